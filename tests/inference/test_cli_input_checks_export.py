"""``napari-cellseg export``: --opset range, --out a folder, format vs suffix, the sidecar, write errors."""

from __future__ import annotations

import pytest
from tiny_models import fitted_model, save_fitted_model

from napari_cellseg.cli import main

torch = pytest.importorskip("torch")
export = pytest.importorskip("napari_cellseg.inference.export")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return save_fitted_model(tmp_path_factory.mktemp("export") / "model")


def _export(model_dir, *args) -> int:
    return main(["export", "--model", str(model_dir), *args])


@pytest.mark.parametrize("opset", ["3", "99", "-1"])
def test_opset_outside_torchs_range_is_refused_up_front(tmp_path, capsys, opset):
    low, high = export.opset_range()
    # A missing model would fail later: the opset is checked first, in one line.
    assert (
        _export(tmp_path / "nope", "--format", "onnx", "--out", str(tmp_path / "m.onnx"), "--opset", opset)
        == 2
    )
    err = capsys.readouterr().err
    assert f"--opset must be between {low} and {high}" in err and f"got {opset}" in err
    assert "Traceback" not in err and not (tmp_path / "m.onnx").exists()


def test_export_model_refuses_an_unsupported_opset(tmp_path):
    model, config = fitted_model()
    with pytest.raises(export.ExportError, match="--opset must be between"):
        export.export_model(model, config, tmp_path / "m.onnx", "onnx", opset=3)


def test_out_folder_format_mismatch_and_json_suffix_are_refused(model_dir, tmp_path, capsys):
    (tmp_path / "outdir").mkdir()
    assert _export(model_dir, "--format", "onnx", "--out", str(tmp_path / "outdir"), "--overwrite") == 2
    assert "outdir is a folder" in capsys.readouterr().err
    assert _export(model_dir, "--format", "torchscript", "--out", str(tmp_path / "m.onnx")) == 2
    assert "--format torchscript but --out" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
    assert _export(model_dir, "--out", str(tmp_path / "m.json")) == 2
    assert ".json is the sidecar's suffix" in capsys.readouterr().err
    assert _export(model_dir, "--out", str(tmp_path / "model")) == 2
    assert "cannot tell the format" in capsys.readouterr().err


def test_format_from_the_suffix_and_the_sidecar_is_kept_without_overwrite(model_dir, tmp_path, capsys):
    out = tmp_path / "a.pt"
    assert _export(model_dir, "--out", str(out)) == 0  # torchscript, from .pt
    sidecar = (tmp_path / "a.pt.json").read_text()
    assert export.load_torchscript(out)[1]["format"] == "torchscript"
    assert '"format": "torchscript"' in sidecar
    # a.onnx of the same stem keeps a sidecar of its own: a.pt's is not replaced
    assert _export(model_dir, "--out", str(tmp_path / "a.onnx")) == 0
    assert '"format": "onnx"' in (tmp_path / "a.onnx.json").read_text()
    assert (tmp_path / "a.pt.json").read_text() == sidecar and not (tmp_path / "a.json").exists()
    capsys.readouterr()
    # an earlier export's sidecar, its file since removed, is not replaced silently
    out.unlink()
    assert _export(model_dir, "--out", str(out)) == 2
    assert "a.pt.json exists" in capsys.readouterr().err
    assert (tmp_path / "a.pt.json").read_text() == sidecar and not out.exists()


def test_a_failed_write_is_one_line(model_dir, tmp_path, monkeypatch, capsys):
    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "atomic_write_bytes", full_disk)
    out = tmp_path / "m.pt"
    assert _export(model_dir, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert f"cannot write {out}: No space left on device" in err and "Traceback" not in err


def test_an_out_whose_file_or_sidecar_is_the_models_own_is_refused(model_dir, tmp_path, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    config = (model / "config.json").read_text()
    # a suffix-less --out's sidecar is config.json
    for args in (["--out", str(model / "config"), "--overwrite"], ["--out", str(model / "config")]):
        assert _export(model, *args, "--format", "torchscript") == 2
        err = capsys.readouterr().err
        assert f"would replace the model's config {model / 'config.json'}" in err
    assert (model / "config.json").read_text() == config and not (model / "config").exists()
    assert _export(model, "--out", str(model / "config.json" / "m.pt")) == 2  # checked before compiling
    assert "is a file, so the folder cannot be made" in capsys.readouterr().err
