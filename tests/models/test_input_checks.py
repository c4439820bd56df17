"""Weights files and model folders given to the wrong option: one sentence, no traceback."""

from __future__ import annotations

import json
import re

import pytest

from napari_cellseg.cli import main
from napari_cellseg.models.checkpoint import load_model_config
from napari_cellseg.models.m2 import load_m2
from napari_cellseg.models.weights_io import ModelLoadError

TINY_ARCH = "mobilenetv3_small_050"  # as in conftest.py


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("text.pt", b"hello", "text.pt: not a PyTorch weights file"),
        ("empty.pt", b"", r"empty.pt: empty file \(0 bytes\)"),
        ("empty.safetensors", b"", r"empty.safetensors: empty file \(0 bytes\)"),
    ],
)
def test_import_m2_names_a_file_that_holds_no_weights(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["import-m2", str(path), "--arch", TINY_ARCH, "--out", str(tmp_path / "m2")]) == 2
    err = capsys.readouterr().err
    assert "import-m2: error:" in err and "Traceback" not in err
    assert re.search(message, err), err
    assert not (tmp_path / "m2").exists()


def _segmentation_model_dir(path):
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"transfer_layers": 4, "new_layers": 4, "out_channels": 3}))
    (path / "model.safetensors").write_bytes(b"not read")
    return path


def test_a_segmentation_model_given_as_m2_says_to_use_init_model(tmp_path):
    model_dir = _segmentation_model_dir(tmp_path / "seg")
    with pytest.raises(ModelLoadError) as info:
        load_m2(model_dir)
    assert (
        str(info.value)
        == f"{model_dir} is a segmentation model, not an M2 classifier (start training from it with --init-model)"
    )


def test_an_m2_given_as_a_segmentation_model_says_to_use_m2(tiny_m2_dir):
    with pytest.raises(
        ModelLoadError, match=r"is an M2 classifier, not a segmentation model \(train from it with --m2\)"
    ):
        load_model_config(tiny_m2_dir)
