"""``napari-cellseg tune-watershed``: the model's own parameters as base and incumbent, and
--grid mistakes refused in words before any image is predicted."""

from __future__ import annotations

import json
import shutil

import pytest

from napari_cellseg.cli import main
from napari_cellseg.inference import tune_watershed_cli
from napari_cellseg.inference.synthetic import probabilities_from_instances
from napari_cellseg.inference.tune_watershed import tune_watershed
from napari_cellseg.inference.watershed import WatershedParams
from napari_cellseg.sample_data import list_samples, load_sample

# Stored parameters that differ from WatershedParams() in what a grid below leaves alone.
STORED = {"interior_threshold": 0.7, "foreground_threshold": 0.4, "min_size": 8, "boundary_weight": 2.0}


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A one-image dataset, a model folder (never loaded) and a fake network that records its calls."""
    sample = list_samples()["c_histology_2"]
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    shutil.copy(sample.image_path, data / "images" / sample.image_path.name)
    shutil.copy(sample.mask_path, data / "masks" / sample.mask_path.name)
    (data / "manifest.csv").write_text(f"id,microscope\n{sample.id},C\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"loss": "weighted-ce", "watershed": STORED}))
    (model / "model.safetensors").write_bytes(b"")
    predicted = []

    def fake_predict(model_dir, device, ids, images):
        predicted.extend(ids)
        _, gt, _ = load_sample("c_histology_2")
        return [probabilities_from_instances(gt)]

    monkeypatch.setattr(tune_watershed_cli, "_predict_all", fake_predict)
    args = ["tune-watershed", "--model", str(model), "--data", str(data)]
    return args, model, predicted


def _watershed(model):
    return json.loads((model / "config.json").read_text())["watershed"]


def test_a_worse_partial_grid_leaves_config_json_unchanged(setup, capsys):
    args, model, _ = setup
    before = (model / "config.json").read_text()
    # 0.2 merges touching cells of these (ideal) probabilities: it scores below the stored 0.7.
    assert main([*args, "--grid", '{"interior_threshold": [0.2]}']) == 0
    out = capsys.readouterr().out
    assert "the model's current parameters score best (dsb_score" in out
    assert "config.json unchanged" in out and "wrote the watershed" not in out
    assert (model / "config.json").read_text() == before


def test_a_partial_grid_keeps_the_models_other_parameters(setup, capsys):
    args, model, _ = setup
    config = json.loads((model / "config.json").read_text())
    config["watershed"] = {**STORED, "interior_threshold": 0.2}  # a poor stored value
    (model / "config.json").write_text(json.dumps(config))
    assert main([*args, "--grid", '{"interior_threshold": [0.7]}']) == 0
    assert "wrote the watershed parameters" in capsys.readouterr().out
    stored = _watershed(model)
    assert stored["interior_threshold"] == 0.7
    # Not reset to WatershedParams() (0.5, 16, 1.0): the model's own values stay.
    assert stored["foreground_threshold"] == 0.4 and stored["min_size"] == 8
    assert stored["boundary_weight"] == 2.0


def test_the_current_parameters_win_ties():
    _, gt, _ = load_sample("c_histology_2")
    probabilities = [probabilities_from_instances(gt)]
    current = WatershedParams(interior_threshold=0.7, min_size=8)
    # min_size 9 removes nothing more here: the same score as the incumbent.
    best, table = tune_watershed(probabilities, [gt], {"min_size": [9]}, base=current, current=current)
    assert best == current
    assert [row["current"] for row in table] == [True, False]
    assert table[0]["dsb_score"] == table[1]["dsb_score"]
    best, _ = tune_watershed(probabilities, [gt], {"min_size": [9]}, base=current)
    assert best.min_size == 9  # without an incumbent the grid point is the best


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ('{"interior_threshold": ["high"]}', "--grid: interior_threshold: 'high' is not a number"),
        ('{"min_size": [8.5]}', "--grid: min_size: 8.5 is not a whole number"),
        ('{"keep_unmarked": [1]}', "--grid: keep_unmarked: 1 is not true or false"),
        ('{"interior_threshold": [1.5]}', "interior_threshold must be in (0, 1], got 1.5"),
        ('{"threshold": [0.5]}', "unknown watershed parameter(s) ['threshold']"),
        ("{}", "must be a JSON object of lists"),
    ],
)
def test_grid_mistakes_are_refused_before_predicting(setup, capsys, grid, message):
    args, model, predicted = setup
    before = (model / "config.json").read_text()
    assert main([*args, "--grid", grid]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert predicted == []  # nothing was predicted
    assert (model / "config.json").read_text() == before


def test_grid_from_a_json_or_yaml_file(setup, tmp_path, capsys):
    args, _, predicted = setup
    (tmp_path / "g.json").write_text('{"min_size": [4]}')
    (tmp_path / "g.yaml").write_text("min_size: [4]\n")
    for name in ("g.json", "g.yaml"):
        assert main([*args, "--grid", str(tmp_path / name), "--dry-run"]) == 0
        assert "min_size=4" in capsys.readouterr().out
    (tmp_path / "bad.yaml").write_text("min_size: [high]\n")
    assert main([*args, "--grid", str(tmp_path / "bad.yaml")]) == 2
    assert "min_size: 'high' is not a number" in capsys.readouterr().err
    assert main([*args, "--grid", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: no such file" in capsys.readouterr().err
    assert main([*args, "--grid", "min_size=8"]) == 2
    assert "give inline JSON" in capsys.readouterr().err
    assert len(predicted) == 2  # only the two good grids predicted


def test_table_folder_and_bundled_model_are_refused_up_front(setup, tmp_path, capsys):
    args, _, predicted = setup
    assert main([*args, "--table", str(tmp_path)]) == 2
    assert f"--table {tmp_path} is a folder" in capsys.readouterr().err
    bundled = ["tune-watershed", "--model", "default", "--data", args[-1]]
    assert main(bundled) == 2
    assert "bundled default model" in capsys.readouterr().err
    assert predicted == []


def test_a_table_that_is_one_of_the_inputs_is_refused_up_front(setup, tmp_path, capsys):
    args, model, predicted = setup
    config = (model / "config.json").read_text()
    for table, what in (
        (model / "config.json", "the model's config"),
        (tmp_path / "data" / "manifest.csv", "manifest"),
    ):
        same = table.parent / ".." / table.parent.name / table.name  # any spelling of the same file
        assert main([*args, "--grid", '{"min_size": [4]}', "--dry-run", "--table", str(same)]) == 2
        err = capsys.readouterr().err
        assert f"--table {same} is " in err and what in err and str(table) in err and "reads" in err
    assert (model / "config.json").read_text() == config and predicted == []


def test_a_stale_record_of_the_winning_parameters_is_measured_again(setup, capsys):
    args, model, _ = setup
    assert main([*args, "--grid", '{"interior_threshold": [0.2]}']) == 0  # no record yet: unchanged
    assert "config.json unchanged" in capsys.readouterr().out
    config = json.loads((model / "config.json").read_text())
    # as recorded by an earlier version of the code, on the same images: another score
    config["metrics"] = {
        "watershed_tuned": {
            "subset": None, "microscope": None, "images": 1, "score": "dsb_score", "dsb_score": 0.1, "ap_50": 0.2,
        }
    }  # fmt: skip
    (model / "config.json").write_text(json.dumps(config))
    assert main([*args, "--grid", '{"interior_threshold": [0.2]}']) == 0
    out = capsys.readouterr().out
    assert "recorded score was measured before and differs: recorded this one" in out
    stored = json.loads((model / "config.json").read_text())
    kept = {key: stored["watershed"][key] for key in config["watershed"]}
    assert kept == config["watershed"]  # the parameters are kept (written with every default filled)
    record = stored["metrics"]["watershed_tuned"]
    assert record["dsb_score"] > 0.1 and record["images"] == 1
    assert main([*args, "--grid", '{"interior_threshold": [0.2]}']) == 0  # now current: unchanged
    assert "config.json unchanged" in capsys.readouterr().out


def test_a_record_of_other_images_of_the_same_count_is_not_taken_for_stale(setup, capsys):
    args, model, _ = setup
    grid = [*args, "--grid", '{"interior_threshold": [0.2]}']
    config = json.loads((model / "config.json").read_text())
    config["metrics"] = {
        "watershed_tuned": {
            "subset": None, "microscope": None, "images": 1, "score": "dsb_score", "dsb_score": 0.1,
            "image_ids_sha256": "0" * 64,  # another image, tuned on with other data
        }
    }  # fmt: skip
    (model / "config.json").write_text(json.dumps(config))
    before = (model / "config.json").read_text()
    assert main(grid) == 0
    assert "config.json unchanged" in capsys.readouterr().out
    assert (model / "config.json").read_text() == before


def test_microscopes_as_train_spells_it_filters_as_microscope(setup, capsys):
    args, _, predicted = setup
    assert main([*args, "--dry-run", "--microscopes", "B"]) == 2  # the one image is C's
    assert "microscope 'B'" in capsys.readouterr().err and not predicted
    assert main([*args, "--dry-run", "--microscopes", "C"]) == 0 and predicted
    assert main([*args, "--dry-run", "--microscope", "C", "B"]) == 2
    assert "--microscope takes one tag, got C B" in capsys.readouterr().err
