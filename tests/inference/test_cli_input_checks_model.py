"""``--model`` of segment, export and tune-watershed: 'default', a file, an M2 classifier."""

from __future__ import annotations

import json

import pytest

from napari_cellseg.cli import main
from napari_cellseg.inference.runtime import ModelNotFoundError, default_model_dir, resolve_model_dir


def test_default_names_the_bundled_model():
    if not (default_model_dir() / "config.json").is_file():
        pytest.skip("no bundled default model in this checkout")
    assert resolve_model_dir("default") == default_model_dir()
    assert resolve_model_dir(None) == default_model_dir()


def test_a_weights_file_is_named_as_a_file(tmp_path, capsys):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="is a file; give the folder that holds model"):
        resolve_model_dir(weights)
    assert (
        main(["export", "--model", str(weights), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 2
    )
    err = capsys.readouterr().err
    assert f"{weights} is a file" in err and "no such model directory" not in err


def test_an_m2_classifier_folder_is_named_as_such(tmp_path, capsys):
    m2 = tmp_path / "m2"
    m2.mkdir()
    (m2 / "config.json").write_text(json.dumps({"arch": "tf_efficientnet_lite0", "num_classes": 10}))
    (m2 / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="is an M2 classifier, not a segmentation model"):
        resolve_model_dir(m2)
    out = tmp_path / "m.pt"
    assert main(["export", "--model", str(m2), "--format", "torchscript", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "M2 classifier" in err and "unknown key" not in err
    assert not out.exists()
