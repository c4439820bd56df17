"""``napari-cellseg split`` end to end on a small dataset cut from the package's sample data."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from napari_cellseg.cli import main
from napari_cellseg.data.splitfile import read_split
from napari_cellseg.data.writer import add_to_dataset
from napari_cellseg.sample_data import load_sample

CELL = 64


def _add_cell(root: Path, key: str, row: int, col: int, flip: bool = False) -> str:
    image, labels, sample = load_sample(key)
    image_id = f"{key}-r{row}c{col}" + ("-flipped" * flip)
    window = (slice(row * CELL, (row + 1) * CELL), slice(col * CELL, (col + 1) * CELL))
    image, labels = image[window], labels[window]
    if flip:  # a new view whose edges continue no other crop
        image, labels = image[::-1, ::-1], labels[::-1, ::-1]
    add_to_dataset(root, image_id, image, labels, sample.microscope)
    return image_id


@pytest.fixture(scope="module")
def tiled_dataset(tmp_path_factory) -> tuple[Path, list[set[str]]]:
    """22 C crops and 4 others; two planted 4-tile fields (tiles share edges), the rest isolated.

    Each C sample (256x320) is cut into a checkerboard of 64x64 cells, so no two
    crops share an edge, plus the cell at row 0, column 1, whose edges join it
    to three checkerboard cells: a field of four tiles that must stay together.
    """
    root = tmp_path_factory.mktemp("split") / "dataset"
    fields = []
    for key in ("c_histology_1", "c_histology_2"):
        for row in range(4):
            for col in range(5):
                if (row + col) % 2 == 0:
                    _add_cell(root, key, row, col)
        joined = _add_cell(root, key, 0, 1)
        fields.append({joined, f"{key}-r0c0", f"{key}-r0c2", f"{key}-r1c1"})
    for key in ("a_fluorescence_1", "a_fluorescence_2", "a_fluorescence_3", "b_brightfield"):
        _add_cell(root, key, 1, 1)
    return root, fields


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["split", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_split_writes_rows_table_and_keeps_tiles_together(tiled_dataset, tmp_path, capsys):
    root, fields = tiled_dataset
    out = tmp_path / "split.csv"
    args = ["--data", str(root), "--target", "C", "--ratios", "0.6", "0.2", "0.2", "--seed", "1"]
    code, stdout, _ = _run(capsys, *args, "--out", str(out))
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0].split() == ["subset", "A", "B", "C", "total"]
    assert lines[4].split() == ["total", "3", "1", "22", "26"]
    assert "6 near-duplicate pairs, 0 across subsets" in stdout
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["id", "microscope", "subset", "group"]
    assert len(rows) == 26
    subsets = read_split(out)
    assert {subsets[i] for r in rows if r["microscope"] != "C" for i in [r["id"]]} == {"train"}
    for field in fields:
        assert len({subsets[i] for i in field}) == 1
        assert len({r["group"] for r in rows if r["id"] in field}) == 1
    counts = {s: sum(1 for r in rows if r["subset"] == s and r["microscope"] == "C") for s in ("dev", "test")}
    assert 1 <= counts["dev"] <= 5 and 1 <= counts["test"] <= 5

    again = tmp_path / "again.csv"
    assert _run(capsys, *args, "--out", str(again))[0] == 0
    assert again.read_text() == out.read_text()  # deterministic

    code, stdout, _ = _run(capsys, *args, "--out", str(tmp_path / "flat.csv"), "--no-grouping")
    assert code == 0 and "grouping off" in stdout and "22 groups" in stdout


def test_previous_split_keeps_subsets_and_sends_new_images_to_train(tiled_dataset, tmp_path, capsys):
    root, _ = tiled_dataset
    first = tmp_path / "first.csv"
    args = ["--target", "C", "--ratios", "0.6", "0.2", "0.2"]
    assert _run(capsys, "--data", str(root), *args, "--out", str(first))[0] == 0
    grown = tmp_path / "grown"
    shutil.copytree(root, grown)
    new_ids = [
        _add_cell(grown, "c_histology_1", 3, 1, flip=True),
        _add_cell(grown, "c_histology_2", 2, 4, flip=True),
    ]
    second = tmp_path / "second.csv"
    code, _, _ = _run(capsys, "--data", str(grown), *args, "--previous", str(first), "--out", str(second))
    assert code == 0
    before, after = read_split(first), read_split(second)
    assert all(after[i] == s for i, s in before.items())
    assert [after[i] for i in new_ids] == ["train", "train"]


def test_an_existing_split_is_kept_unless_overwrite_and_previous_is_named(tiled_dataset, tmp_path, capsys):
    # a model may have trained on split.csv: re-running split must not move its images
    root, _ = tiled_dataset
    out = tmp_path / "split.csv"
    args = ["--data", str(root), "--target", "C", "--ratios", "0.6", "0.2", "0.2"]
    assert _run(capsys, *args, "--out", str(out))[0] == 0
    out.write_text(out.read_text().replace(",dev,", ",test,"))  # stands for an older, different split
    kept = out.read_text()
    code, _, err = _run(capsys, *args, "--seed", "5", "--out", str(out))
    assert code == 2 and f"{out} exists" in err and f"--previous {out}" in err and "--overwrite" in err
    assert out.read_text() == kept and "near-duplicate search" not in err  # refused before the work
    assert _run(capsys, *args, "--seed", "5", "--out", str(out), "--overwrite")[0] == 0
    assert out.read_text() != kept


def test_an_out_that_is_an_input_or_cannot_be_written_is_refused_before_the_work(
    tiled_dataset, tmp_path, capsys
):
    root, _ = tiled_dataset
    previous = tmp_path / "split.csv"
    args = ["--data", str(root), "--target", "C", "--ratios", "0.6", "0.2", "0.2"]
    assert _run(capsys, *args, "--out", str(previous))[0] == 0
    manifest = (root / "manifest.csv").read_text()
    for out, what in ((root / "manifest.csv", "the dataset's manifest"), (previous, "the --previous split")):
        code, _, err = _run(capsys, *args, "--previous", str(previous), "--out", str(out), "--overwrite")
        assert code == 2 and f"--out {out} is {what}" in err
    assert (root / "manifest.csv").read_text() == manifest
    code, _, err = _run(capsys, *args, "--out", str(previous / "v2.csv"))  # under a file
    assert code == 2 and "is a file, so the folder cannot be made" in err and "near-duplicate" not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ratios", "0.5", "0.3", "0.3"], "ratios must sum to 1"),
        (["--ratios", "0.4", "0.3", "0.3"], "train must hold more C images than dev"),
        (["--target", "Q"], "no images of target microscope 'Q' in the dataset (A=3, B=1, C=22)"),
        (["--new-images", "split"], "--new-images split places the images that a --previous split lacks"),
    ],
)
def test_impossible_requests_exit_2_with_a_message(tiled_dataset, tmp_path, capsys, extra, message):
    root, _ = tiled_dataset
    args = ["--data", str(root), "--target", "C", "--out", str(tmp_path / "s.csv"), *extra]
    code, _, stderr = _run(capsys, *args)
    assert code == 2
    assert message in stderr and "Traceback" not in stderr
    assert not (tmp_path / "s.csv").exists()


def test_broken_dataset_is_reported_not_raised(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "manifest.csv").write_text("id,microscope\nx,C\n")
    code, _, stderr = _run(capsys, "--data", str(tmp_path), "--target", "C", "--out", str(tmp_path / "s.csv"))
    assert code == 2 and "missing image for id 'x'" in stderr


def test_registering_the_command_imports_nothing_heavy():
    code = (
        "import sys, napari_cellseg.data.commands as c, argparse;"
        "p = argparse.ArgumentParser(); c.register(p.add_subparsers());"
        "print(sorted(m for m in ('numpy', 'torch', 'napari', 'tifffile') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
