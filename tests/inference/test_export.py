"""Export to TorchScript and ONNX: reloaded exports reproduce the probabilities at any size."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_models import fitted_model, save_fitted_model

from napari_cellseg.cli import main

torch = pytest.importorskip("torch")
export = pytest.importorskip("napari_cellseg.inference.export")

# One size a multiple of 32 and two that are not (odd and smaller than the stride).
SIZES = [(64, 96), (70, 90), (37, 53)]


@pytest.fixture(scope="module")
def model_and_config():
    torch.set_num_threads(1)
    return fitted_model()


def eager_probabilities(model, config, x: np.ndarray) -> np.ndarray:
    from napari_cellseg.models.checkpoint import logits_to_probabilities

    with torch.inference_mode():
        return logits_to_probabilities(model(torch.from_numpy(x)), config.loss).numpy()


def inputs(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(height * width).standard_normal((2, 3, height, width)).astype(np.float32)


def test_torchscript_export_reproduces_the_probabilities(tmp_path, model_and_config):
    model, config = model_and_config
    result = export.export_model(model, config, tmp_path / "model.pt", "torchscript")
    assert result.max_error <= 1e-4
    loaded, metadata = export.load_torchscript(tmp_path / "model.pt")
    for height, width in SIZES:
        x = inputs(height, width)
        with torch.inference_mode():
            got = loaded(torch.from_numpy(x)).numpy()
        assert got.shape == (2, 3, height, width)
        np.testing.assert_allclose(got, eager_probabilities(model, config, x), atol=1e-5)
    assert metadata["normalization"] == config.normalization.to_dict()
    assert metadata["output"]["classes"] == ["background", "boundary", "interior"]
    assert json.loads((tmp_path / "model.pt.json").read_text()) == metadata
    assert metadata["model_config"]["object_diameter"] == pytest.approx(config.object_diameter)


def test_onnx_export_is_valid_and_runs_with_the_reference_evaluator(tmp_path, model_and_config):
    import onnx

    model, config = model_and_config
    export.export_model(model, config, tmp_path / "model.onnx", "onnx")
    proto = onnx.load(str(tmp_path / "model.onnx"))
    onnx.checker.check_model(proto)
    assert [i.name for i in proto.graph.input] == ["image"]
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 3, "H", "W"]  # any batch and image size
    metadata = export.read_onnx_metadata(tmp_path / "model.onnx")
    assert metadata["format"] == "onnx" and metadata["normalization"]["high_percentile"] == 99.8
    # onnxruntime is not a dependency: onnx's numpy reference evaluator runs the graph.
    for height, width in SIZES[:2]:
        x = inputs(height, width)[:1]
        got = export.run_onnx_reference(tmp_path / "model.onnx", x)
        np.testing.assert_allclose(got, eager_probabilities(model, config, x), atol=1e-4)


def test_two_channel_bce_models_export_their_probability_step(tmp_path):
    from napari_cellseg.models.checkpoint import ModelConfig
    from napari_cellseg.models.m2 import M2Config
    from napari_cellseg.models.surgery import build_model

    torch.manual_seed(1)
    m2 = M2Config(arch="tf_efficientnet_lite0", num_classes=0, mean=(0.5,) * 3, std=(0.5,) * 3)
    model = build_model(m2, transfer_layers=1, new_layers=1, out_channels=2, decoder_channels=(8, 8), pretrained=False)  # fmt: skip
    model.eval()
    config = ModelConfig.for_model(model, loss="weighted-bce")
    export.export_model(model, config, tmp_path / "bce.pt")
    loaded, _ = export.load_torchscript(tmp_path / "bce.pt")
    x = inputs(45, 51)
    with torch.inference_mode():
        got = loaded(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, eager_probabilities(model, config, x), atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_unknown_format_is_refused(tmp_path, model_and_config):
    model, config = model_and_config
    with pytest.raises(export.ExportError, match="torchscript"):
        export.export_model(model, config, tmp_path / "m.x", "tflite")


def test_the_format_follows_the_suffix_and_a_contradiction_is_refused(tmp_path, model_and_config):
    model, config = model_and_config
    # No fmt: cells.onnx is ONNX (it used to be a TorchScript zip under an .onnx name).
    export.export_model(model, config, tmp_path / "cells.onnx")
    assert export.read_onnx_metadata(tmp_path / "cells.onnx")["format"] == "onnx"
    with pytest.raises(
        export.ExportError,
        match=r"fmt='torchscript' but the suffix \.onnx stands for onnx; name it other\.pt",
    ):
        export.export_model(model, config, tmp_path / "other.onnx", "torchscript")
    assert not (tmp_path / "other.onnx").exists()
    with pytest.raises(export.ExportError, match="sidecar"):
        export.export_model(model, config, tmp_path / "m.json")


@pytest.mark.parametrize("reader", ["load_torchscript", "read_onnx_metadata", "run_onnx_reference"])
def test_a_missing_or_garbage_file_is_named(tmp_path, reader):
    read = getattr(export, reader)
    args = (np.zeros((1, 3, 32, 32), np.float32),) if reader == "run_onnx_reference" else ()
    with pytest.raises(export.ExportError, match=r"missing\.bin: no such file"):
        read(tmp_path / "missing.bin", *args)
    (tmp_path / "garbage.bin").write_bytes(b"garbage")
    with pytest.raises(export.ExportError, match=r"garbage\.bin: not an? (TorchScript|ONNX) file"):
        read(tmp_path / "garbage.bin", *args)


def test_export_cli(tmp_path, capsys):
    model_dir = save_fitted_model(tmp_path / "model")
    out = tmp_path / "exported.pt"
    assert main(["export", "--model", str(model_dir), "--format", "torchscript", "--out", str(out)]) == 0
    assert out.is_file() and (tmp_path / "exported.pt.json").is_file()
    assert "wrote" in capsys.readouterr().out
    # An existing file is kept unless --overwrite.
    assert main(["export", "--model", str(model_dir), "--format", "onnx", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", "--model", str(tmp_path / "nope"), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 2  # fmt: skip
    assert "no such model directory" in capsys.readouterr().err


def documented_recipe() -> str:
    """The Python block of docs/predicting.md's export section that runs an exported file."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "predicting.md").read_text()
    section = text[text.index("## `napari-cellseg export`") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```\n", start)]


def test_the_metadata_carries_the_object_scale_and_its_rule(tmp_path, model_and_config):
    import copy

    model, config = model_and_config
    config = copy.deepcopy(config)
    config.default_diameter = 0.0  # as the bundled model: the plugin estimates each image's size
    export.export_model(model, config, tmp_path / "m.pt")
    sidecar = json.loads((tmp_path / "m.pt.json").read_text())
    assert sidecar["object_diameter"] == pytest.approx(config.object_diameter)
    assert sidecar["default_diameter"] == 0.0
    rule = sidecar["input"]["rule"]
    assert "object_diameter / diameter" in rule and "iter_estimate_diameter" in rule
    assert export.load_torchscript(tmp_path / "m.pt")[1] == sidecar


@pytest.mark.parametrize("enlarge", [1.0, 1.3, 0.8])
def test_the_documented_recipe_matches_predict_probabilities(
    tmp_path, monkeypatch, model_and_config, enlarge
):
    from napari_cellseg.inference.predict import predict_probabilities
    from napari_cellseg.sample_data import load_sample

    model, config = model_and_config
    monkeypatch.chdir(tmp_path)
    export.export_model(model, config, "cells-torchscript.pt")
    image = load_sample("c_histology_1")[0][:150, :170]
    diameter = config.object_diameter / enlarge  # the plugin resamples by `enlarge`
    namespace = {"image": image, "diameter": diameter}
    exec(documented_recipe(), namespace)
    expected = predict_probabilities(model, config, image, diameter=diameter)
    assert namespace["probabilities"].shape == expected.shape == (3, 150, 170)
    np.testing.assert_allclose(namespace["probabilities"], expected, atol=1e-4)
