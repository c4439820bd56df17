"""``napari-cellseg evaluate`` and ``tune-watershed`` end to end on small files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cellseg.cli import main
from napari_cellseg.inference import tune_watershed_cli
from napari_cellseg.inference.synthetic import probabilities_from_instances
from napari_cellseg.sample_data import SAMPLE_DIR, list_samples, load_sample

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def write_labels(folder: Path, name: str, labels: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / f"{name}.tif", labels, compression="zlib")


@pytest.fixture
def folders(tmp_path):
    """gt/ and pred/ with three images (A perfect, A shifted, C empty prediction) + manifest."""
    gt = np.zeros((32, 32), np.uint16)
    gt[2:12, 2:12] = 1
    gt[20:30, 20:30] = 2
    shifted = np.roll(gt, 2, axis=1)  # IoU 2/3 per cell
    write_labels(tmp_path / "gt", "a1", gt)
    write_labels(tmp_path / "gt", "a2", gt)
    write_labels(tmp_path / "gt", "c1", gt)
    write_labels(tmp_path / "pred", "a1", gt)
    write_labels(tmp_path / "pred", "a2", shifted)
    write_labels(tmp_path / "pred", "c1", np.zeros_like(gt))
    (tmp_path / "manifest.csv").write_text("id,microscope\na1,A\na2,A\nc1,C\n")
    return tmp_path


def test_evaluate_prints_groups_and_writes_json(folders, capsys):
    out = folders / "metrics.json"
    code = main(["evaluate", "--pred", str(folders / "pred"), "--gt", str(folders / "gt"), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "Pooled over objects" in printed and "Mean of per-image scores" in printed
    lines = {line.split()[0]: line.split() for line in printed.splitlines() if line[:2] in ("A ", "C ", "al")}
    assert lines["A"][1] == "2" and lines["C"][1] == "1" and lines["all"][1] == "3"
    assert float(lines["A"][2]) == 1.0  # AP@0.5: shifted cells still match (IoU 2/3)
    assert float(lines["A"][3]) == pytest.approx(0.5, abs=1e-3)  # AP@0.75: one image of two
    assert float(lines["C"][2]) == 0.0
    stored = json.loads(out.read_text())
    assert stored["groups"]["all"]["n_images"] == 3
    assert stored["groups"]["all"]["tp"][0] == 4 and stored["groups"]["all"]["fn"][0] == 2
    assert {image["name"]: image["microscope"] for image in stored["images"]} == {
        "a1": "A",
        "a2": "A",
        "c1": "C",
    }


def test_missing_prediction_is_an_error_unless_skipped(folders, capsys):
    (folders / "pred" / "c1.tif").unlink()
    args = ["evaluate", "--pred", str(folders / "pred"), "--gt", str(folders / "gt")]
    assert main(args) == 2
    assert "1 of 3 ground-truth images have no prediction" in capsys.readouterr().err
    assert main([*args, "--skip-missing"]) == 0
    captured = capsys.readouterr()
    assert "skipped 1 ground-truth image(s) without a prediction: c1" in captured.err
    assert "C " not in captured.out.split("Mean")[0]


def test_no_manifest_groups_as_question_mark(folders, capsys):
    (folders / "manifest.csv").unlink()
    assert main(["evaluate", "--pred", str(folders / "pred"), "--gt", str(folders / "gt")]) == 0
    printed = capsys.readouterr().out
    assert "no manifest" in printed and any(line.startswith("? ") for line in printed.splitlines())


def test_bad_files_are_named(folders, capsys):
    write_labels(folders / "pred", "a1", np.zeros((16, 16), np.uint16))
    assert main(["evaluate", "--pred", str(folders / "pred"), "--gt", str(folders / "gt")]) == 2
    err = capsys.readouterr().err
    assert "a1.tif has shape (16, 16)" in err and "(32, 32)" in err
    write_labels(folders / "pred", "a1", np.zeros((32, 32), np.float32))
    assert main(["evaluate", "--pred", str(folders / "pred"), "--gt", str(folders / "gt")]) == 2
    assert "float32" in capsys.readouterr().err
    assert main(["evaluate", "--pred", str(folders / "nope"), "--gt", str(folders / "gt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (folders / "bad.csv").write_text("name,kind\n")
    args = ["--pred", str(folders / "pred"), "--gt", str(folders / "gt")]
    assert main(["evaluate", *args, "--manifest", str(folders / "bad.csv")]) == 2
    assert "needs columns 'id' and 'microscope'" in capsys.readouterr().err


def test_a_windows_manifest_and_gt_dot_are_read(folders, capsys, monkeypatch):
    # Excel's "CSV UTF-8": a BOM and CRLF, as check, split and train accept
    (folders / "manifest.csv").write_bytes(b"\xef\xbb\xbfid,microscope\r\na1,A\r\na2,A\r\nc1,C\r\n")
    monkeypatch.chdir(folders / "gt")  # --gt .: the manifest is ../manifest.csv
    assert main(["evaluate", "--pred", str(folders / "pred"), "--gt", "."]) == 0
    printed = capsys.readouterr().out
    assert "microscopes from" in printed and str(folders / "manifest.csv") in printed
    assert {line.split()[0] for line in printed.splitlines() if line[:2] in ("A ", "C ")} == {"A", "C"}
    (folders / "manifest.csv").write_bytes("id,microscope,note\na1,A,Hôpital\n".encode("cp1252"))
    assert main(["evaluate", "--pred", str(folders / "pred"), "--gt", "."]) == 2
    err = capsys.readouterr().err
    assert (
        "manifest.csv: not UTF-8 (byte 0xf4 on line 2): save it as CSV UTF-8" in err
        and "Traceback" not in err
    )


def test_evaluate_the_package_samples_against_themselves(tmp_path, capsys):
    gt_dir = SAMPLE_DIR / "masks"
    assert main(["evaluate", "--pred", str(gt_dir), "--gt", str(gt_dir)]) == 0
    printed = capsys.readouterr().out
    all_line = next(line for line in printed.splitlines() if line.startswith("all"))
    assert all_line.split()[1:] == ["6", "1.000", "1.000", "1.000", "1.000", "1.000"]
    assert "microscopes from" in printed  # sample_data/manifest.csv beside masks/


@pytest.mark.shared_data
def test_evaluate_on_shared_demo_data(capsys):
    demo = SHARED / "dsb2018-demo"
    if not (demo / "masks").is_dir():
        pytest.skip(f"shared data not found at {demo.resolve()}")
    assert main(["evaluate", "--pred", str(demo / "masks"), "--gt", str(demo / "masks")]) == 0
    printed = capsys.readouterr().out
    assert next(line for line in printed.splitlines() if line.startswith("all")).split()[1] == "6"


def test_commands_module_imports_nothing_heavy():
    code = (
        "import argparse, sys; from napari_cellseg.inference import commands; "
        "commands.register(argparse.ArgumentParser().add_subparsers()); "
        "print(sorted(m for m in ('torch', 'skimage', 'napari', 'scipy') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.fixture
def tiny_dataset(tmp_path):
    """Two package samples as a dataset folder, with a split file."""
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = ["id,microscope"]
    for key in ("a_fluorescence_3", "c_histology_2"):
        sample = list_samples()[key]
        shutil.copy(sample.image_path, root / "images" / sample.image_path.name)
        shutil.copy(sample.mask_path, root / "masks" / sample.mask_path.name)
        rows.append(f"{sample.id},{sample.microscope}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    ids = [row.split(",")[0] for row in rows[1:]]
    (tmp_path / "split.csv").write_text(f"id,subset\n{ids[0]},train\n{ids[1]},dev\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"loss": "weighted-ce"}))
    (model / "model.safetensors").write_bytes(b"")  # never loaded: _predict_all is faked
    return tmp_path


def test_tune_watershed_writes_the_model_config(tiny_dataset, monkeypatch, capsys):
    seen = []

    def fake_predict(model_dir, device, ids, images):  # the network is not under test here
        seen.extend(ids)
        _, gt, _ = load_sample("c_histology_2")
        return [probabilities_from_instances(gt)]

    monkeypatch.setattr(tune_watershed_cli, "_predict_all", fake_predict)
    model, data, split = (str(tiny_dataset / name) for name in ("model", "data", "split.csv"))
    grid = '{"interior_threshold": [0.2, 0.5, 0.7], "min_size": [8, 16]}'
    table_path = tiny_dataset / "t.json"
    args = ["tune-watershed", "--model", model, "--data", data, "--split", split, "--grid", grid]
    assert main([*args, "--table", str(table_path)]) == 0
    assert seen == [list_samples()["c_histology_2"].id]  # only the dev image
    config = json.loads((tiny_dataset / "model" / "config.json").read_text())
    assert config["loss"] == "weighted-ce"
    assert config["watershed"]["interior_threshold"] in (0.5, 0.7)  # 0.2 merges touching cells
    table = json.loads(table_path.read_text())
    # 6 grid points and the model's current parameters (library defaults: it stores none).
    assert len(table) == 7 and table[0]["dsb_score"] >= table[-1]["dsb_score"]
    assert [row["current"] for row in table].count(True) == 1
    assert "wrote the watershed parameters" in capsys.readouterr().out
    assert main([*args[:-1], '{"threshold": [0.5]}']) == 2
    assert "unknown watershed parameter" in capsys.readouterr().err


@pytest.mark.parametrize("rounds", [1, 2, 3, 4])
def test_tune_watershed_rounds_that_cycle_keep_the_best_under_its_own_size_estimate(
    tiny_dataset, monkeypatch, capsys, rounds
):
    # A size-estimating model: each setting's estimate favours the other (0.2 -> 0.5 -> 0.2 ...).
    # The stored one used to depend on the parity of --rounds, with a score measured under the
    # other setting's estimate.
    from napari_cellseg.inference.watershed_params import WatershedParams

    own = {0.2: 0.30, 0.5: 0.31}  # each setting's score under its own size estimate
    under_other = {0.2: 0.32, 0.5: 0.305}  # ... and under the other's

    def fake_round(args, grid, current, ids, images, ground_truth):
        mine = current.interior_threshold
        other = 0.5 if mine == 0.2 else 0.2
        best = WatershedParams.from_dict({**current.to_dict(), "interior_threshold": other})
        best_row = {"interior_threshold": other, "dsb_score": under_other[other], "current": False}
        return best, best_row, {"interior_threshold": mine, "dsb_score": own[mine], "current": True}

    monkeypatch.setattr(tune_watershed_cli, "_tune_round", fake_round)
    config_path = tiny_dataset / "model" / "config.json"
    config = {"default_diameter": 0, "watershed": {"interior_threshold": 0.2}}
    config_path.write_text(json.dumps(config))
    model, data, split = (str(tiny_dataset / name) for name in ("model", "data", "split.csv"))
    grid = '{"interior_threshold": [0.2, 0.5]}'
    args = ["tune-watershed", "--model", model, "--data", data, "--split", split, "--grid", grid]
    assert main([*args, "--rounds", str(rounds)]) == 0
    out, err = capsys.readouterr()
    stored = json.loads(config_path.read_text())
    assert stored["watershed"]["interior_threshold"] == 0.5
    if rounds == 1:  # one round cannot tell: it says the parameters had not settled
        assert "still changed after 1 round(s)" in err
        return
    assert "still changed" not in err and "the rounds cycle between 2 settings" in out
    assert stored["metrics"]["watershed_tuned"]["dsb_score"] == 0.31  # 0.5 under its own estimate


def test_tune_watershed_reports_a_bad_split(tiny_dataset, capsys):
    (tiny_dataset / "split.csv").write_text("id,fold\nx,1\n")
    args = ["tune-watershed", "--model", str(tiny_dataset / "model"), "--data", str(tiny_dataset / "data")]
    assert main([*args, "--split", str(tiny_dataset / "split.csv")]) == 2
    assert "needs columns 'id' and 'subset'" in capsys.readouterr().err


def test_outlines_from_qupath_score_like_the_labels_they_came_from(tmp_path, capsys):
    """Either side may be GeoJSON outlines: another tool's cells, or annotations drawn in QuPath."""
    import json

    import numpy as np

    from napari_cellseg.cli import main
    from napari_cellseg.inference.outlines import write_geojson, write_imagej_rois
    from napari_cellseg.io import write_tiff_layer
    from napari_cellseg.sample_data import load_sample

    _, mask, _ = load_sample("c_histology_2")
    pred = mask.copy()
    pred[pred == 3] = 0  # one missed cell
    folders = {name: tmp_path / name for name in ("gt_tif", "gt_json", "pred_tif", "pred_json", "pred_rois")}
    for folder in folders.values():
        folder.mkdir()
    write_tiff_layer(folders["gt_tif"] / "x.tif", mask, "labels")
    write_geojson(folders["gt_json"] / "x.geojson", mask)
    write_tiff_layer(folders["pred_tif"] / "x.tif", pred, "labels")
    write_geojson(folders["pred_json"] / "x.geojson", pred)
    write_imagej_rois(folders["pred_rois"] / "x_rois.zip", pred)  # Fiji's name pairs with "x"
    scores = []
    pairs = [
        ("pred_tif", "gt_tif"),
        ("pred_json", "gt_tif"),
        ("pred_tif", "gt_json"),
        ("pred_json", "gt_json"),
    ]
    for pred_dir, gt_dir in [*pairs, ("pred_rois", "gt_tif")]:
        out = tmp_path / f"{pred_dir}-{gt_dir}.json"
        assert main(["evaluate", "--pred", str(folders[pred_dir]), "--gt", str(folders[gt_dir]), "--out", str(out)]) == 0  # fmt: skip
        scores.append(json.loads(out.read_text()))
    capsys.readouterr()
    first = scores[0]["groups"]["all"]
    assert all(s["groups"]["all"] == first for s in scores[1:])  # outlines read back exactly
    assert first["tp"][0] == mask.max() - 1 and first["fn"][0] == 1 and first["fp"][0] == 0
    assert np.isclose(first["ap"][0], (mask.max() - 1) / mask.max())


def test_outlines_written_beside_the_labels_do_not_block_evaluation(folders, capsys):
    from napari_cellseg.inference.outlines import write_geojson, write_imagej_rois

    labels = tifffile.imread(folders / "pred" / "a1.tif")
    write_geojson(folders / "pred" / "a1.geojson", labels)  # segment --geojson --imagej-rois
    write_imagej_rois(folders / "pred" / "a1_rois.zip", labels)
    args = ["evaluate", "--pred", str(folders / "pred"), "--gt", str(folders / "gt")]
    assert main(args) == 0
    assert "two files" not in capsys.readouterr().err
    write_labels(folders / "pred", "a1_copy", labels)
    (folders / "pred" / "a1_copy.tif").rename(folders / "pred" / "a1.tiff")  # two rasters: ambiguous
    assert main(args) == 2
    assert "two files for id a1" in capsys.readouterr().err


def test_an_image_beside_its_outlines_is_not_scored_as_the_labels(folders, capsys):
    # QuPath / import-outlines layout: <id>.tif is the microscopy image, <id>.geojson the cells.
    # The grey image was read as labels (every grey level a cell): 0.000, exit 0, no word said.
    from PIL import Image

    from napari_cellseg.inference.outlines import write_geojson
    from napari_cellseg.io import write_tiff_layer

    cells = tifffile.imread(folders / "gt" / "a1.tif")
    gt = folders / "truth"
    gt.mkdir()
    write_geojson(gt / "a1.geojson", cells)
    grey = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) % 97) + 3
    tifffile.imwrite(gt / "a1.tif", grey)
    args = ["evaluate", "--pred", str(folders / "pred"), "--gt", str(gt), "--skip-missing"]
    assert main(args) == 2  # a grey integer image could be either: refused, naming both files
    assert "ground truth: two files for id a1: a1.tif, a1.geojson" in capsys.readouterr().err
    masks = folders / "gt_labels"  # a folder's name proves nothing: it was scored as labels (0.000)
    masks.mkdir()
    write_geojson(masks / "a1.geojson", cells)
    tifffile.imwrite(masks / "a1.tif", grey)
    assert main(["evaluate", "--pred", str(folders / "pred"), "--gt", str(masks), "--skip-missing"]) == 2
    assert "two files for id a1" in capsys.readouterr().err
    for image in ("rgb", "float"):  # cannot be labels: the outlines are scored, and the run says so
        (gt / "a1.tif").unlink(missing_ok=True)
        if image == "rgb":
            Image.fromarray(np.stack([grey.astype(np.uint8)] * 3, axis=-1)).save(gt / "a1.png")
        else:
            (gt / "a1.png").unlink()
            tifffile.imwrite(gt / "a1.tif", grey.astype(np.float32))
        assert main(args) == 0
        out, err = capsys.readouterr()
        assert _all_scores(out) == ["1", "1.000", "1.000", "1.000", "1.000", "1.000"], (image, out)
        assert "scored a1.geojson; a1" in err
    # the plugin's own labels beside outlines of other cells: the labels (its header says so)
    (gt / "a1.tif").unlink()
    write_tiff_layer(gt / "a1.tif", cells, "labels")
    write_geojson(gt / "a1.geojson", np.roll(cells, 5, axis=0))
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert _all_scores(out) == ["1", "1.000", "1.000", "1.000", "1.000", "1.000"] and "a1" not in err


def _all_scores(printed: str) -> list[str]:
    """The first table's "all" row: images, AP@0.5, AP@0.75, DSB, F1@0.5, AJI."""
    return next(line.split()[1:] for line in printed.splitlines() if line.startswith("all"))


def test_empty_outlines_are_a_prediction_of_no_cells(folders, capsys):
    # segment --geojson --imagej-rois on an image without cells writes empty files; evaluate
    # refused them ("holds no polygon outline") and the whole evaluation stopped.
    from napari_cellseg.inference.outlines import write_geojson, write_imagej_rois

    labels = {stem: tifffile.imread(folders / "pred" / f"{stem}.tif") for stem in ("a1", "a2", "c1")}
    scores = {}
    for kind in ("tif", "geojson", "rois"):
        pred = folders / f"pred_{kind}"
        pred.mkdir()
        for stem, cells in labels.items():
            if kind == "tif":
                write_labels(pred, stem, cells)
            elif kind == "geojson":
                write_geojson(pred / f"{stem}.geojson", cells)
            else:
                write_imagej_rois(pred / f"{stem}_rois.zip", cells)
        out = folders / f"{kind}.json"
        assert main(["evaluate", "--pred", str(pred), "--gt", str(folders / "gt"), "--out", str(out)]) == 0
        scores[kind] = json.loads(out.read_text())["groups"]["all"]
    assert scores["geojson"] == scores["rois"] == scores["tif"] and scores["tif"]["fn"][0] == 2
    # outlines on both sides: the empty prediction takes the size of the ground truth's outlines
    gt_outlines = folders / "gt_geojson"
    gt_outlines.mkdir()
    write_geojson(gt_outlines / "c1.geojson", tifffile.imread(folders / "gt" / "c1.tif"))
    args = ["evaluate", "--pred", str(folders / "pred_geojson"), "--gt", str(gt_outlines), "--skip-missing"]
    assert main([*args, "--out", str(folders / "both.json")]) == 0
    assert json.loads((folders / "both.json").read_text())["groups"]["all"]["fn"][0] == 2
    capsys.readouterr()
