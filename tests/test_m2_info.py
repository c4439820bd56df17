"""M2 architecture and depth (the range of l), read without loading weights."""

from __future__ import annotations

import json
import struct

import pytest

from napari_cellseg.app.m2_info import m2_arch, m2_depth
from napari_cellseg.models.m2 import default_m2_dir


def test_default_m2_depth_needs_no_torch():
    assert m2_depth("default") == m2_depth(None) == 5
    assert m2_arch(default_m2_dir()) == "tf_efficientnet_lite0"
    assert m2_depth(default_m2_dir()) == 5


def test_other_architectures_are_counted_by_timm(tmp_path):
    folder = tmp_path / "m2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"arch": "convnext_atto", "num_classes": 0}))
    assert m2_depth(folder) == 4  # ConvNeXt has four stages


def test_safetensors_metadata_names_the_architecture(tmp_path):
    header = {"__metadata__": {"napari_cellseg.m2": json.dumps({"arch": "resnet18", "num_classes": 0})}}
    data = json.dumps(header).encode()
    path = tmp_path / "m2.safetensors"
    path.write_bytes(struct.pack("<Q", len(data)) + data)
    assert m2_arch(path) == "resnet18"


def test_unreadable_m2_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no such M2 checkpoint"):
        m2_depth(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"not an M2 folder \(config\.json is missing\)"):
        m2_depth(tmp_path / "empty")
    bare = tmp_path / "weights.pt"
    bare.write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match="does not name its architecture"):
        m2_arch(bare)
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"123")
    with pytest.raises(ValueError, match="not a safetensors file"):
        m2_arch(short)


def test_a_safetensors_file_is_told_by_its_content_not_its_name(tmp_path):
    header = {"__metadata__": {"napari_cellseg.m2": json.dumps({"arch": "resnet18", "num_classes": 0})}}
    data = json.dumps(header).encode()
    for name in ("m2.bin", "m2.SAFETENSORS", "m2"):  # a download's name, an upper-case suffix, none
        (tmp_path / name).write_bytes(struct.pack("<Q", len(data)) + data)
        assert m2_arch(tmp_path / name) == "resnet18"
    pickle = tmp_path / "torch.safetensors"  # a torch pickle under the name
    pickle.write_bytes(b"\x80\x04" + b"\x00" * 20)
    with pytest.raises(ValueError, match=r"not a safetensors file \(it does not open with"):
        m2_arch(pickle)
