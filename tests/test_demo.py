import os
import subprocess
import sys
from pathlib import Path


def test_headless_demo_runs_without_display(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    exe = Path(sys.executable).with_name("napari-cellseg")
    out = tmp_path / "demo"
    result = subprocess.run(
        [str(exe), "demo", "--out", str(out)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "headless" in result.stdout
    if "not available" in result.stdout:  # before a default model is bundled
        assert not out.exists()
    else:
        assert (out / "c_histology_1_labels.tif").is_file()
        assert (out / "c_histology_1_overlay.png").is_file()


def test_demo_rejects_unknown_sample():
    exe = Path(sys.executable).with_name("napari-cellseg")
    result = subprocess.run(
        [str(exe), "demo", "--headless", "--sample", "nope"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "unknown sample 'nope'" in result.stderr


def test_demo_refuses_a_file_as_out_and_a_window_without_display(tmp_path, monkeypatch, capsys):
    from napari_cellseg.cli import main

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    (tmp_path / "a-file").write_text("x")
    assert main(["demo", "--headless", "--out", str(tmp_path / "a-file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    if sys.platform.startswith("linux"):
        assert main(["demo", "--gui"]) == 2
        assert "--headless" in capsys.readouterr().err
