"""``napari-cellseg evaluate`` on a split's subset, and on a folder that ``segment`` wrote extras into."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from tiny_models import save_fitted_model, write_sample_images

from napari_cellseg.cli import main
from napari_cellseg.sample_data import load_sample


def _labels(folder, name, labels):
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / f"{name}.tif", labels, compression="zlib")


@pytest.fixture
def split_folders(tmp_path):
    """gt/ with six images, a split with two test, one dev and three train images, and
    predictions for the test images only (one perfect, one empty)."""
    gt = np.zeros((32, 32), np.uint16)
    gt[2:12, 2:12], gt[20:30, 20:30] = 1, 2
    subsets = {"t1": "test", "t2": "test", "d1": "dev", "r1": "train", "r2": "train", "r3": "train"}
    for image_id in subsets:
        _labels(tmp_path / "gt", image_id, gt)
    _labels(tmp_path / "pred", "t1", gt)
    _labels(tmp_path / "pred", "t2", np.zeros_like(gt))
    rows = [f"{i},C,{s},{i}" for i, s in subsets.items()]
    (tmp_path / "split.csv").write_text("id,microscope,subset,group\n" + "\n".join(rows) + "\n")
    return tmp_path


def test_a_splits_subset_is_scored_and_the_other_images_need_no_prediction(split_folders, capsys):
    base = ["evaluate", "--pred", str(split_folders / "pred"), "--gt", str(split_folders / "gt")]
    assert main(base) == 2  # without --split: the other four images have no prediction
    assert "4 of 6 ground-truth images have no prediction" in capsys.readouterr().err
    out = split_folders / "metrics.json"
    assert (
        main([*base, "--split", str(split_folders / "split.csv"), "--subset", "test", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "2 image(s) (the test images of split.csv); microscopes from" in printed  # the split's column
    all_line = next(line for line in printed.splitlines() if line.startswith("all"))
    assert all_line.split()[1:3] == ["2", "0.500"]  # t1: 2 of 2 cells; t2: 0 of 2
    stored = json.loads(out.read_text())
    assert stored["scored"] == "test images of split.csv" and stored["left_out_predictions"] == []
    assert {image["name"]: image["microscope"] for image in stored["images"]} == {"t1": "C", "t2": "C"}


def test_a_missing_prediction_within_the_subset_is_still_an_error(split_folders, capsys):
    (split_folders / "pred" / "t2.tif").unlink()
    _labels(split_folders / "pred", "r1", np.zeros((32, 32), np.uint16))  # a train image: left out
    args = ["evaluate", "--pred", str(split_folders / "pred"), "--gt", str(split_folders / "gt")]
    args += ["--split", str(split_folders / "split.csv"), "--subset", "test"]
    assert main(args) == 2
    assert "1 of 2 test images of split.csv have no prediction" in capsys.readouterr().err
    assert main([*args, "--skip-missing"]) == 0
    captured = capsys.readouterr()
    assert "skipped 1 test images of split.csv without a prediction: t2" in captured.err
    assert "left out 1 prediction(s) of images outside the test images of split.csv: r1" in captured.err
    assert "1 image(s) (the test images of split.csv)" in captured.out


def test_split_and_subset_go_together_and_a_foreign_split_is_refused(split_folders, capsys):
    base = ["evaluate", "--pred", str(split_folders / "pred"), "--gt", str(split_folders / "gt")]
    assert main([*base, "--split", str(split_folders / "split.csv")]) == 2
    assert "--split needs --subset dev, test or train" in capsys.readouterr().err
    assert main([*base, "--subset", "test"]) == 2
    assert "--subset needs --split CSV" in capsys.readouterr().err
    (split_folders / "other.csv").write_text("id,microscope,subset,group\nt1,C,test,a\nx9,C,test,b\n")
    assert main([*base, "--split", str(split_folders / "other.csv"), "--subset", "test"]) == 2
    err = capsys.readouterr().err
    assert "1 of the 2 test images of other.csv have no ground truth in" in err and "x9" in err
    (split_folders / "dev-only.csv").write_text("id,subset\nt1,dev\n")
    assert main([*base, "--split", str(split_folders / "dev-only.csv"), "--subset", "test"]) == 2
    assert "dev-only.csv: no test images (train 0, dev 1, test 0)" in capsys.readouterr().err


def test_the_extra_outputs_of_segment_are_not_taken_for_predictions(tmp_path, capsys):
    """segment --overlays --save-probabilities, then evaluate --skip-missing: no overlay or
    probabilities listed as a prediction without ground truth."""
    import torch

    torch.set_num_threads(1)
    model_dir = save_fitted_model(tmp_path / "model")
    paths = write_sample_images(tmp_path / "in")[:2]
    out = tmp_path / "results"
    args = ["segment", *map(str, paths), "--model", str(model_dir), "--out", str(out), "--tile", "128"]
    assert main([*args, "--overlays", "--save-probabilities", "--quiet"]) == 0
    assert len(list(out.glob("*_overlay.png"))) == 2 and len(list(out.glob("*_probabilities.tif"))) == 2
    (out / "stray_overlay.png").write_bytes((out / f"{paths[0].stem}_overlay.png").read_bytes())
    capsys.readouterr()
    gt = tmp_path / "masks"
    for path in paths:
        _labels(gt, path.stem, load_sample(path.stem)[1])
    assert main(["evaluate", "--pred", str(out), "--gt", str(gt), "--skip-missing"]) == 0
    captured = capsys.readouterr()
    assert (
        "_overlay" not in captured.err.replace("stray_overlay", "") and "_probabilities" not in captured.err
    )
    assert (
        "ignored 1 prediction(s) without ground truth: stray_overlay" in captured.err
    )  # no labels beside it
    assert "2 image(s)" in captured.out
