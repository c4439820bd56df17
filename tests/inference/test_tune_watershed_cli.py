"""``napari-cellseg tune-watershed`` with a real (tiny) model directory: the prediction wiring."""

from __future__ import annotations

import json
import shutil

import pytest

from napari_cellseg.cli import main
from napari_cellseg.inference.watershed import WatershedParams
from napari_cellseg.sample_data import list_samples


@pytest.fixture
def model_and_data(tmp_path):
    torch = pytest.importorskip("torch")
    from tiny_models import fitted_model

    from napari_cellseg.models.checkpoint import save_model_dir

    torch.set_num_threads(1)
    model, config = fitted_model()
    save_model_dir(tmp_path / "model", model, config)
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    sample = list_samples()["c_histology_2"]
    shutil.copy(sample.image_path, data / "images" / sample.image_path.name)
    shutil.copy(sample.mask_path, data / "masks" / sample.mask_path.name)
    (data / "manifest.csv").write_text(f"id,microscope\n{sample.id},C\n")
    return tmp_path


def test_tune_watershed_predicts_and_stores_loadable_params(model_and_data, capsys):
    from napari_cellseg.models.checkpoint import load_model_config

    model_dir = model_and_data / "model"
    grid = '{"interior_threshold": [0.5, 0.7], "min_size": [8]}'
    args = ["tune-watershed", "--model", str(model_dir), "--data", str(model_and_data / "data")]
    assert main([*args, "--grid", grid, "--device", "cpu"]) == 0
    assert "predicted 1/1" in capsys.readouterr().out
    stored = load_model_config(model_dir).watershed  # the model directory still loads
    params = WatershedParams.from_dict(stored)
    assert params.interior_threshold in (0.5, 0.7) and params.min_size == 8
    tuned = load_model_config(model_dir).metrics["watershed_tuned"]  # what the GUI shows
    assert tuned["images"] == 1 and tuned["subset"] is None and tuned["score"] == "dsb_score"  # no split: all
    assert 0 <= tuned["dsb_score"] <= tuned["ap_50"] <= 1
    before = json.loads((model_dir / "config.json").read_text())
    assert main([*args, "--grid", '{"min_size": [32]}', "--device", "cpu", "--dry-run"]) == 0
    assert json.loads((model_dir / "config.json").read_text()) == before


def _cpu_args(root):
    return ["tune-watershed", "--model", str(root / "model"), "--data", str(root / "data"), "--device", "cpu"]


def test_tune_watershed_takes_a_list_of_grids_and_refuses_other_json(model_and_data, capsys):
    args = _cpu_args(model_and_data)
    grids = '[{"split_height": [1.0]}, {"peak_height": [0.2], "marker_smoothing": [1.0]}]'
    assert main([*args, "--grid", grids, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "grid search on 1 image(s)" in out and "peak_height=0.2" in out and "split_height=1" in out
    assert main([*args, "--grid", '[{"min_size": 8}]']) != 0
    assert "or a list of such objects" in capsys.readouterr().err


def test_a_size_estimating_model_is_retuned_until_its_parameters_settle(model_and_data, capsys):
    model_dir = model_and_data / "model"
    config = json.loads((model_dir / "config.json").read_text())
    config["default_diameter"] = 0.0  # segmentation estimates sizes with a watershed pass
    config.pop("watershed", None)
    (model_dir / "config.json").write_text(json.dumps(config))
    args = _cpu_args(model_and_data)
    grid = '{"interior_threshold": [0.5, 0.7], "min_size": [8]}'
    assert main([*args, "--grid", grid, "--rounds", "3"]) == 0
    out = capsys.readouterr().out
    rounds = out.count("grid search on 1 image(s)")
    assert 2 <= rounds <= 3 and "round 2: the size estimate uses the new parameters" in out
    # Each round writes, except the last when the stored parameters score best (settled) or the
    # grid's best was stored in an earlier round (a cycle: the best under its own estimate is kept).
    writes = out.count("wrote the watershed parameters")
    settled = sum(
        out.count(end)
        for end in (
            "the model's current parameters score best",
            "score best under their own size",
            "rounds cycle",
        )
    )
    assert writes >= 1 and settled <= 1 and writes + settled == rounds
    assert main([*args, "--grid", grid, "--rounds", "0"]) != 0
    assert "--rounds must be >= 1" in capsys.readouterr().err
