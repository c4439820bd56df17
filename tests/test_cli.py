"""The command line's entry point."""

from napari_cellseg.cli import main


def test_no_command_prints_the_usage_and_fails(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "segment" in err


def test_python_dash_m_reports_user_errors_as_the_console_script_does(tmp_path):
    # torchrun runs `python -m napari_cellseg.cli`: a wrong folder is a message, not a traceback.
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "napari_cellseg.cli", "train", "--data", str(tmp_path / "no"), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "napari-cellseg train: error:" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_output_folder_that_cannot_be_made_is_one_line_before_any_work(tmp_path, capsys):
    from napari_cellseg.cli import main

    (tmp_path / "afile").write_text("")
    for argv in (
        ["train", "--data", str(tmp_path), "--out", str(tmp_path / "afile" / "run")],
        ["segment", str(tmp_path), "--out", str(tmp_path / "afile")],
        ["demo", "--headless", "--out", str(tmp_path / "afile" / "d")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "afile" in err and "Traceback" not in err and "error: --out" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing made
