"""A dev or test set whose images hold no labelled cell cannot score AP: the split warns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from napari_cellseg.cli import main
from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.data.split import split_dataset
from napari_cellseg.data.splitfile import read_split
from napari_cellseg.data.writer import add_to_dataset

RATIOS = ("0.8", "0.1", "0.1")  # of 12 images: dev 1, test 1


def _dataset(root: Path, cells: bool = True) -> Path:
    """10 C and 2 A images of 32 x 32 px, each with one cell (or none)."""
    rng = np.random.default_rng(0)
    for k in range(12):
        image = rng.integers(0, 255, (32, 32), dtype=np.uint8)
        labels = np.zeros((32, 32), np.uint16)
        if cells:
            labels[8:20, 8:20] = 1
        add_to_dataset(root, f"img{k:02d}", image, labels, "C" if k < 10 else "A")
    return root


def _empty(root: Path, ids) -> None:
    dataset = CellDataset.open(root)
    for image_id in ids:
        tifffile.imwrite(dataset[image_id].label_path, np.zeros((32, 32), np.uint16))


def _split(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["split", "--target", "C", "--ratios", *RATIOS, "--no-grouping", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_dev_and_test_without_cells_warn_on_stderr_and_the_split_is_written(tmp_path, capsys):
    root = _dataset(tmp_path / "data", cells=False)
    out = tmp_path / "split.csv"
    code, stdout, stderr = _split(capsys, "--data", str(root), "--out", str(out))
    assert code == 0 and out.is_file()
    warnings = [line for line in stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2, stderr
    assert warnings[0].startswith("warning: dev holds 1 C image(s) and none has a labelled cell")
    assert warnings[1].startswith("warning: test holds 1 C image(s) and none has a labelled cell")
    assert all("AP cannot be scored" in w and "another seed" in w for w in warnings)
    assert "warning" not in stdout


def test_only_the_set_without_cells_is_named_and_previous_splits_get_their_advice(tmp_path, capsys):
    root = _dataset(tmp_path / "data")
    first = tmp_path / "split.csv"
    code, _, stderr = _split(capsys, "--data", str(root), "--out", str(first))
    assert code == 0 and "warning" not in stderr  # every image holds a cell
    dev = [i for i, s in read_split(first).items() if s == "dev"]
    _empty(root, dev)
    code, _, stderr = _split(
        capsys, "--data", str(root), "--previous", str(first), "--out", str(tmp_path / "v2.csv")
    )
    assert code == 0
    (warning,) = [line for line in stderr.splitlines() if line.startswith("warning: ")]
    assert warning.startswith(f"warning: dev holds 1 C image(s) and none has a labelled cell ({dev[0]})")
    assert "previous split" in warning and "--new-images split" in warning


def test_the_core_function_reports_it_in_the_result(tmp_path):
    root = _dataset(tmp_path / "data")
    dataset = CellDataset.open(root)
    ratios = tuple(float(r) for r in RATIOS)
    assert split_dataset(dataset, "C", ratios, grouping=False).warnings == ()
    result = split_dataset(dataset, "C", ratios, grouping=False)
    test = [i for i, s in result.subsets.items() if s == "test"]
    _empty(root, test)
    again = split_dataset(CellDataset.open(root), "C", ratios, grouping=False)
    assert again.subsets == result.subsets  # same seed, same split
    (warning,) = again.warnings
    assert warning.startswith("test holds 1 C image(s)") and test[0] in warning
    assert again.notes == result.notes  # a warning, not a note: the CLI prints it on stderr
