"""Network surgery: l / l_a / l_f, output size, freezing, summary."""

from __future__ import annotations

import pytest

from napari_cellseg.models.m2 import M2Config, ModelLoadError
from napari_cellseg.models.stages import split_stages

torch = pytest.importorskip("torch")

from napari_cellseg.models.decoder import decoder_plan  # noqa: E402
from napari_cellseg.models.surgery import CellSegNet, SurgeryError, build_model  # noqa: E402

SHAPES = ((64, 64), (70, 90))


def _run(model: CellSegNet, shape) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(torch.randn(1, 3, *shape))


def test_default_m2_stages(default_m2):
    stages, infos = split_stages(default_m2[0], "tf_efficientnet_lite0")
    assert [i.reduction for i in infos] == [2, 4, 8, 16, 32]
    assert [i.channels for i in infos] == [16, 24, 40, 112, 320]
    assert infos[0].modules == ("conv_stem", "bn1", "blocks.0")
    assert infos[4].modules == ("blocks.5", "blocks.6")
    # The stages share the classifier's weights.
    assert stages[0].conv_stem.weight is default_m2[0].conv_stem.weight


def test_decoder_plan_documented_cases():
    assert decoder_plan(5, 5) == [4, 3, 2, 1, 0]
    assert decoder_plan(5, 2) == [4, 3]
    assert decoder_plan(3, 5) == [2, 1, 0, 0, 0]


@pytest.mark.parametrize("transfer_layers", [1, 2, 3, 4, 5])
def test_every_valid_combination_builds_and_runs_tiny_arch(tiny_m2, transfer_layers):
    for new_layers in range(1, transfer_layers + 3):
        for frozen_layers in range(transfer_layers + 1):
            out_channels = 3 if (new_layers + frozen_layers) % 2 else 2
            model = build_model(tiny_m2, transfer_layers, new_layers, frozen_layers, out_channels)
            for shape in SHAPES:
                assert _run(model, shape).shape == (1, out_channels, *shape), (
                    transfer_layers,
                    new_layers,
                    frozen_layers,
                    shape,
                )


@pytest.mark.parametrize("transfer_layers", [1, 2, 3, 4, 5])
def test_combinations_run_on_the_default_m2(default_m2, transfer_layers):
    for new_layers, frozen_layers in {(1, 0), (transfer_layers, transfer_layers), (transfer_layers + 2, 1)}:
        model = build_model(default_m2, transfer_layers, new_layers, frozen_layers)
        for shape in SHAPES:
            out = _run(model, shape)
            assert out.shape == (1, 3, *shape)
            assert torch.isfinite(out).all()


def test_defaults_are_a_full_unet_of_all_stages(default_m2):
    model = build_model(default_m2)
    assert (model.transfer_layers, model.new_layers, model.frozen_layers) == (5, 5, 0)
    assert model.decoder.levels == [4, 3, 2, 1, 0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"transfer_layers": 0}, r"transfer_layers l=0 is out of range .* l in 1\.\.5"),
        ({"transfer_layers": 6}, r"transfer_layers l=6 .* 5 stages \(1\.\.5\)"),
        ({"transfer_layers": 3, "new_layers": 0}, r"new_layers l_a=0 .* l_a in 1\.\.5"),
        ({"transfer_layers": 3, "new_layers": 6}, r"new_layers l_a=6 .* l_a in 1\.\.5"),
        ({"transfer_layers": 3, "frozen_layers": 4}, r"frozen_layers l_f=4 .* l_f in 0\.\.3"),
        ({"transfer_layers": 3, "frozen_layers": -1}, r"frozen_layers l_f=-1"),
        ({"out_channels": 4}, r"out_channels must be 3 .* or 2"),
        ({"decoder_channels": (16, 8)}, r"decoder_channels \(16, 8\) needs at least l=5"),
    ],
)
def test_invalid_combinations_name_the_valid_ranges(default_m2, kwargs, message):
    with pytest.raises(SurgeryError, match=message):
        build_model(default_m2, **kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"transfer_layers": True}, {"new_layers": True}, {"frozen_layers": False}]
)
def test_a_boolean_is_not_a_number_of_layers(tiny_m2, kwargs):
    with pytest.raises(SurgeryError) as info:
        build_model(tiny_m2, **kwargs)
    (name, value), message = next(iter(kwargs.items())), str(info.value)
    assert f"{name} l" in message and f"={value} is not a whole number of layers" in message
    assert "True" not in message.split("valid:")[1]  # it used to offer "l_f in 0..True"


def test_frozen_stages_keep_weights_and_batchnorm_statistics(tiny_m2):
    torch.manual_seed(0)
    model = build_model(tiny_m2, transfer_layers=3, new_layers=3, frozen_layers=2)
    model.train()
    frozen, trainable = model.encoder[:2], model.encoder[2]
    bn_frozen = [m for m in frozen.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    bn_trainable = [m for m in trainable.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bn_frozen and bn_trainable
    assert not any(m.training for m in bn_frozen)
    assert all(m.training for m in bn_trainable)
    assert not any(p.requires_grad for p in frozen.parameters())
    assert all(p.requires_grad for p in trainable.parameters())

    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = model(torch.randn(2, 3, 64, 64)).square().mean()
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert not any(k.startswith(("encoder.0.", "encoder.1.")) for k in changed)
    assert any(k.startswith("encoder.2.") and "running_mean" in k for k in changed)
    assert any(k.startswith("decoder.") for k in changed)


def test_pretrained_false_is_random_init_of_the_same_architecture(default_m2):
    m2_model = default_m2[0]
    pretrained = build_model(default_m2, transfer_layers=2)
    scratch = build_model(default_m2, transfer_layers=2, pretrained=False)
    assert torch.equal(pretrained.encoder[0].conv_stem.weight, m2_model.conv_stem.weight)
    assert scratch.encoder[0].conv_stem.weight.shape == m2_model.conv_stem.weight.shape
    assert not torch.equal(scratch.encoder[0].conv_stem.weight, m2_model.conv_stem.weight)
    assert list(pretrained.state_dict()) == list(scratch.state_dict())


def test_building_from_a_loaded_m2_does_not_share_its_modules(tiny_m2):
    model = build_model(tiny_m2, transfer_layers=2, frozen_layers=2)
    assert model.encoder[0].conv_stem.weight is not tiny_m2[0].conv_stem.weight
    assert tiny_m2[0].conv_stem.weight.requires_grad
    assert not any(m.training for m in tiny_m2[0].modules()), "the M2 left eval mode"


def test_m2_config_alone_needs_pretrained_false(tiny_m2):
    config = M2Config(arch=tiny_m2[1].arch, num_classes=0)
    with pytest.raises(SurgeryError, match="pretrained=False"):
        build_model(config)
    assert build_model(config, pretrained=False, transfer_layers=2).transfer_layers == 2


def test_summary_lists_origin_state_and_parameters(default_m2):
    model = build_model(default_m2, transfer_layers=4, new_layers=3, frozen_layers=2)
    rows = model.summary_rows()
    assert [r.name for r in rows] == [f"stage {i}" for i in range(1, 5)] + [
        "decoder 1",
        "decoder 2",
        "decoder 3",
        "head",
    ]
    assert [r.origin for r in rows] == ["M2"] * 4 + ["new"] * 4
    assert [r.state for r in rows] == ["frozen"] * 2 + ["trainable"] * 6
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert frozen == rows[0].params + rows[1].params
    assert rows[-1].detail.endswith("logits up x2 (bilinear)")
    text = model.summary()
    assert "l=4 transferred, l_a=3 new, l_f=2 frozen" in text
    assert f"{frozen:,} frozen" in text


def test_channels_last_gives_the_same_output(tiny_m2):
    torch.manual_seed(0)
    model = build_model(tiny_m2, transfer_layers=4).eval()
    x = torch.randn(1, 3, 70, 90)
    with torch.no_grad():
        expected = model(x)
        fast = build_model(tiny_m2, transfer_layers=4, channels_last=True).eval()
        fast.load_state_dict(model.state_dict())
        out = fast(x.contiguous(memory_format=torch.channels_last))
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)


def test_tiny_inputs_and_bad_input_shape(tiny_m2):
    model = build_model(tiny_m2, transfer_layers=5)
    assert _run(model, (5, 7)).shape == (1, 3, 5, 7)
    with pytest.raises(ValueError, match=r"expects \(N, 3, H, W\) .* got shape \(1, 1, 8, 8\)"):
        model(torch.zeros(1, 1, 8, 8))


def test_other_timm_cnn_as_m2():
    from napari_cellseg.models.m2 import build_classifier

    resnet = build_classifier("resnet10t", 0)
    model = build_model((resnet, M2Config(arch="resnet10t", num_classes=0)), transfer_layers=3)
    assert [i.reduction for i in model.stage_infos] == [2, 4, 8]
    assert _run(model, (64, 64)).shape == (1, 3, 64, 64)


def test_non_sequential_architecture_is_refused():
    from napari_cellseg.models.m2 import build_classifier

    vit = build_classifier("vit_tiny_patch16_224", 0)
    with pytest.raises(ModelLoadError, match="vit_tiny_patch16_224"):
        build_model((vit, M2Config(arch="vit_tiny_patch16_224", num_classes=0)))


def test_freeze_stages_refreezes_a_built_network(tiny_m2):
    model = build_model(tiny_m2, transfer_layers=3, new_layers=3, frozen_layers=0)
    model.freeze_stages(2)
    assert model.frozen_layers == 2
    assert not any(p.requires_grad for p in model.encoder[:2].parameters())
    assert all(p.requires_grad for p in model.encoder[2].parameters())
    assert not model.encoder[0].training and model.encoder[2].training
    model.freeze_stages(0)  # and back: every stage trains again
    assert all(p.requires_grad for p in model.encoder.parameters()) and model.encoder[0].training
    with pytest.raises(SurgeryError, match=r"l_f=4 is out of range for l=3 \(0\.\.3"):
        model.freeze_stages(4)
