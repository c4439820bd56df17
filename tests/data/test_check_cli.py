"""``napari-cellseg check``: counts on a good dataset, every bad file named on a bad one."""

from __future__ import annotations

import shutil

import numpy as np
import tifffile

from napari_cellseg.cli import main
from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.sample_data import SAMPLE_DIR


def test_check_counts_images_and_cells(capsys):
    assert main(["check", "--data", str(SAMPLE_DIR)]) == 0
    out = capsys.readouterr().out
    dataset = CellDataset.open(SAMPLE_DIR)
    c_cells = sum(int(dataset.load_instances(r.id).max()) for r in dataset if r.microscope == "C")
    assert out.splitlines()[3].split() == ["C", "2", str(c_cells)]
    assert "no problem found (manifest, headers and pixels)" in out
    assert main(["check", "--data", str(SAMPLE_DIR), "--headers-only"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["microscope", "images"] and "(headers only)" in out


def test_check_names_a_binary_mask_that_headers_pass(tmp_path, capsys):
    root = tmp_path / "ds"
    shutil.copytree(SAMPLE_DIR, root, ignore=shutil.ignore_patterns("*.md"))
    record = CellDataset.open(root).records[0]
    labels = tifffile.imread(record.label_path)
    tifffile.imwrite(record.label_path, np.where(labels > 0, 255, 0).astype(np.uint8))
    assert main(["check", "--data", str(root), "--headers-only"]) == 0
    capsys.readouterr()
    assert main(["check", "--data", str(root)]) == 2
    err = capsys.readouterr().err
    assert f"masks/{record.id}.tif: one label (255) covers" in err and "binary mask" in err


def test_check_of_a_missing_folder_names_it(tmp_path, capsys):
    assert main(["check", "--data", str(tmp_path / "nowhere")]) == 2
    assert f"{tmp_path / 'nowhere'}: no such folder" in capsys.readouterr().err


def test_check_and_split_take_the_manifests_own_tags_and_note_case_variants(tmp_path, capsys):
    root = tmp_path / "ds"
    shutil.copytree(SAMPLE_DIR, root, ignore=shutil.ignore_patterns("*.md"))
    manifest = root / "manifest.csv"
    lines = manifest.read_text().splitlines()
    lines[1] = lines[1].replace(",A,", ",D,", 1)  # a lab's own microscope
    lines[2] = lines[2].replace(",A,", ",c,", 1)  # a mistyped C
    manifest.write_text("\n".join(lines) + "\n")
    assert main(["check", "--data", str(root), "--headers-only"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:] if len(line.split()) == 2}
    assert rows["D"] == "1" and rows["c"] == "1"
    assert "note: the tags 'C' and 'c' differ only in case" in out
    # --microscopes still holds the manifest to the tags given
    assert main(["check", "--data", str(root), "--headers-only", "--microscopes", "A", "B", "C"]) == 2
    assert "unknown microscope 'D'" in capsys.readouterr().err
    # split reads the same tags: its refusal is about too few C images, not about D
    assert main(["split", "--data", str(root), "--target", "C", "--out", str(tmp_path / "s.csv")]) == 2
    err = capsys.readouterr().err
    assert "train must hold more C images" in err and "unknown microscope" not in err
