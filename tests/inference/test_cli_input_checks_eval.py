"""``napari-cellseg evaluate``: bad labels, an --out folder and a manifest that misses ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cellseg.cli import main


@pytest.fixture
def folders(tmp_path):
    gt = np.zeros((32, 32), np.int16)
    gt[2:12, 2:12] = 1
    gt[20:30, 20:30] = 2
    for name in ("pred", "gt"):
        (tmp_path / name).mkdir()
        for stem in ("a1", "b1"):
            tifffile.imwrite(tmp_path / name / f"{stem}.tif", gt)
    return tmp_path


def _args(root: Path) -> list[str]:
    return ["evaluate", "--pred", str(root / "pred"), "--gt", str(root / "gt")]


def test_negative_labels_name_the_file(folders, capsys):
    bad = np.zeros((32, 32), np.int16)
    bad[5:9, 5:9] = -48
    tifffile.imwrite(folders / "pred" / "b1.tif", bad)
    assert main(_args(folders)) == 2
    err = capsys.readouterr().err
    assert "b1.tif: instance labels must be >= 0, found -48" in err and "Traceback" not in err


def test_a_binary_mask_is_named(folders, capsys):
    binary = np.zeros((32, 32), np.uint8)
    binary[2:6, 2:6] = binary[10:14, 2:6] = binary[2:6, 20:24] = 255
    tifffile.imwrite(folders / "gt" / "a1.tif", binary)
    assert main(_args(folders)) == 2
    assert "a1.tif: one label (255) covers 3 separate regions" in capsys.readouterr().err


def test_out_folder_is_refused_before_scoring(folders, capsys):
    (folders / "outdir").mkdir()
    assert main([*_args(folders), "--out", str(folders / "outdir")]) == 2
    captured = capsys.readouterr()
    assert "--out" in captured.err and "outdir is a folder; give a .json file" in captured.err
    assert "Pooled over objects" not in captured.out  # refused before the results


def test_a_failed_write_is_one_line(folders, monkeypatch, capsys):
    def full_disk(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("napari_cellseg.config.atomic_write_text", full_disk)
    out = folders / "m.json"
    assert main([*_args(folders), "--out", str(out)]) == 2
    assert f"cannot write {out}: No space left on device" in capsys.readouterr().err


def test_ids_missing_from_the_manifest_are_noted(folders, capsys):
    manifest = folders / "split.csv"
    manifest.write_text("id,microscope\na1,A\nzz,B\n")
    assert main([*_args(folders), "--manifest", str(manifest), "--out", str(folders / "m.json")]) == 0
    err = capsys.readouterr().err
    assert "note: 1 of 2 images are not in split.csv (e.g. b1)" in err
    images = json.loads((folders / "m.json").read_text())["images"]
    assert {i["name"]: i["microscope"] for i in images} == {"a1": "A", "b1": "?"}
    manifest.write_text("id,microscope\na1,A\nb1,B\n")
    assert main([*_args(folders), "--manifest", str(manifest)]) == 0
    assert "not in split.csv" not in capsys.readouterr().err


def test_an_out_that_is_an_input_or_cannot_be_written_is_refused_before_scoring(folders, capsys):
    manifest = folders / "manifest.csv"  # beside --gt: read by default
    manifest.write_text("id,microscope\na1,A\nb1,B\n")
    for out in (manifest, folders / "pred" / "a1.tif", folders / "gt" / ".." / "manifest.csv"):
        assert main([*_args(folders), "--out", str(out)]) == 2
        captured = capsys.readouterr()
        assert (
            f"--out {out} is the manifest" in captured.err or f"--out {out} is a label file" in captured.err
        )
        assert "Pooled over objects" not in captured.out
    assert manifest.read_text() == "id,microscope\na1,A\nb1,B\n"
    assert main([*_args(folders), "--out", str(manifest / "m.json")]) == 2  # under a file
    captured = capsys.readouterr()
    assert "is a file, so the folder cannot be made" in captured.err and "Pooled" not in captured.out
