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


def _m2_copy(tiny_m2_dir, folder, **changes):
    import shutil

    shutil.copytree(tiny_m2_dir, folder)
    data = json.loads((folder / "config.json").read_text())
    data.update(changes)
    (folder / "config.json").write_text(json.dumps(data))
    return folder


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_classes": -1}, r"num_classes must be a whole number >= 0, got -1"),
        ({"std": [0, 0, 0]}, r"std must be 3 positive numbers, got \[0\.0, 0\.0, 0\.0\]"),
        ({"mean": [-0.1, 0.5, 0.5]}, r"mean must be 3 numbers on the \[0, 1\] scale"),
        ({"input_size": 0}, r"input_size must be a whole number >= 1, got 0"),
        ({"class_names": ["a", "b"]}, r"class_names has 2 names for num_classes=10"),
    ],
)
def test_bad_m2_config_values_are_refused_naming_the_file(tmp_path, tiny_m2_dir, changes, message):
    folder = _m2_copy(tiny_m2_dir, tmp_path / "m2", **changes)
    with pytest.raises(ModelLoadError) as info:
        load_m2(folder)
    assert str(info.value).startswith(f"{folder / 'config.json'}: "), info.value
    assert re.search(message, str(info.value)), info.value


def test_train_from_an_m2_with_negative_classes_is_one_line(tmp_path, tiny_m2_dir, tiny_dataset, capsys):
    folder = _m2_copy(tiny_m2_dir, tmp_path / "m2", num_classes=-1)
    argv = ["train", "--data", str(tiny_dataset), "--out", str(tmp_path / "run"), "--m2", str(folder)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{folder / 'config.json'}: num_classes must be a whole number >= 0, got -1" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_an_unknown_arch_suggests_only_close_names():
    from napari_cellseg.models.m2 import build_classifier

    with pytest.raises(ModelLoadError) as info:
        build_classifier("resnet_50")
    assert "similar names: " in str(info.value) and "resnet50" in str(info.value)
    with pytest.raises(ModelLoadError) as info:
        build_classifier("no_such_net")
    # `*no*` used to list convnext_nano and such: nothing here is like no_such_net
    assert "nano" not in str(info.value)


def _bare_safetensors(tiny_m2, path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tiny_m2[0].state_dict().items()}, str(path))
    return path


@pytest.mark.parametrize("name", ["bare.SAFETENSORS", "bare.bin", "bare.pt"])
def test_safetensors_content_is_read_whatever_the_file_is_named(tmp_path, tiny_m2, capsys, name):
    path = _bare_safetensors(tiny_m2, tmp_path / name)
    assert main(["import-m2", str(path), "--arch", TINY_ARCH, "--out", str(tmp_path / "m2")]) == 0, (
        capsys.readouterr().err
    )
    assert load_m2(tmp_path / "m2")[1].weights_sha256 == tiny_m2[1].weights_sha256


def test_a_torch_file_named_safetensors_is_read_with_the_safe_unpickler(tmp_path, tiny_m2):
    import torch

    from napari_cellseg.models.weights_io import read_state_dict

    path = tmp_path / "mislabelled.safetensors"
    torch.save(tiny_m2[0].state_dict(), path)
    state, metadata = read_state_dict(path)
    assert metadata == {} and state.keys() == tiny_m2[0].state_dict().keys()


def test_a_torch_error_without_text_is_named_by_its_type(tmp_path):
    from napari_cellseg.models.weights_io import read_state_dict

    path = tmp_path / "cut.pt"
    path.write_bytes(b"\x80\x04")  # a pickle cut after its protocol byte: torch raises a bare EOFError
    with pytest.raises(ModelLoadError, match=r"cut\.pt: not a readable PyTorch weights file \(EOFError\)$"):
        read_state_dict(path)
