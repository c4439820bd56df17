"""Qt-free logic of the Dataset widget: check, split with a previous split, preview."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.app.dataset_tools import (
    check_dataset,
    counts_table,
    iter_run_split,
    preview_dataset_augmentations,
    problem_lines,
)
from napari_cellseg.data.split import SplitConfig, SplitError
from napari_cellseg.data.splitfile import read_split
from napari_cellseg.inference.predict import run_to_end

NO_GROUPING = SplitConfig(grouping=False)


def test_check_dataset(sample_dataset_dir, tmp_path):
    result = check_dataset(sample_dataset_dir)
    assert result.ok and result.counts() == {"A": 3, "B": 1, "C": 2}
    cells = result.cells()
    assert set(cells) == {"A", "B", "C"} and all(n > 0 for n in cells.values())
    assert check_dataset(sample_dataset_dir, pixels=False).cells() == {}  # headers only
    broken = check_dataset(tmp_path)
    assert not broken.ok and broken.dataset is None
    lines = problem_lines(tmp_path, broken.problems)
    assert [line.split(":")[0] for line in lines] == ["manifest.csv", "images", "masks"]
    assert "no images/ folder" in lines[1]


def test_counts_table():
    counts = {"train": {"A": 3, "C": 8}, "dev": {"A": 0, "C": 1}, "test": {"A": 0, "C": 1}}
    assert counts_table(counts) == (
        ["subset", "A", "C", "total"],
        [["train", 3, 8, 11], ["dev", 0, 1, 1], ["test", 0, 1, 1], ["total", 3, 10, 13]],
    )


def test_split_keeps_previous_assignments(tiny_dataset):
    from napari_cellseg.data.writer import add_to_dataset
    from napari_cellseg.sample_data import load_sample

    first = run_to_end(iter_run_split(tiny_dataset, NO_GROUPING))
    assert first.path == tiny_dataset / "split.csv" and not first.previous_used
    assert first.table()[1][-1] == ["total", 3, 1, 10, 14]
    image, mask, _ = load_sample("c_histology_2")
    add_to_dataset(tiny_dataset, "new_c", image[::-1].copy(), mask[::-1].copy(), "C")
    second = run_to_end(iter_run_split(tiny_dataset, NO_GROUPING))
    assert second.previous_used and second.kept == 14 and second.new_ids == ("new_c",)
    split = read_split(second.path)
    assert split["new_c"] == "train"
    assert {i: split[i] for i in first.result.subsets} == first.result.subsets
    fresh = run_to_end(iter_run_split(tiny_dataset, NO_GROUPING, keep_previous=False))
    assert not fresh.previous_used and fresh.kept == 0


def test_impossible_split_raises_and_writes_nothing(sample_dataset_dir, tmp_path):
    out = tmp_path / "split.csv"
    with pytest.raises(SplitError, match="target 'C' has 2 images"):
        run_to_end(iter_run_split(sample_dataset_dir, SplitConfig(), out))
    assert not out.exists()


def test_preview_dataset_augmentations(sample_dataset_dir):
    images, targets = preview_dataset_augmentations(
        sample_dataset_dir, "a6593632dcbbe4c9e9429a9cec573d26fd8c91a47d554d315f25e7c2e0280ee3", "light", 2, 64
    )
    assert images.shape[:3] == (2, 64, 64) and images.dtype == np.float32
    assert targets.shape == (2, 64, 64) and set(np.unique(targets)) <= {0, 1, 2}
    assert 0.0 <= images.min() and images.max() <= 1.0
    with pytest.raises(ValueError, match="at least 1 sample"):
        preview_dataset_augmentations(sample_dataset_dir, "x", n=0)


def test_the_split_file_of_another_dataset_is_refused_not_replaced(tiny_dataset, tmp_path):
    other = tmp_path / "other-split.csv"
    other.write_text("id,microscope,subset,group\nsomeone_else,C,dev,g1\n")
    with pytest.raises(SplitError, match="split of another dataset"):
        run_to_end(iter_run_split(tiny_dataset, NO_GROUPING, other, keep_previous=False))
    assert "someone_else" in other.read_text()


def _retag(root, tags: dict[str, str]):
    """Give a dataset's images other microscope tags (another lab's D and E)."""
    manifest = root / "manifest.csv"
    lines = manifest.read_text().splitlines()
    rows = [lines[0]] + [
        ",".join([r.split(",")[0], tags[r.split(",")[1]], *r.split(",")[2:]]) for r in lines[1:]
    ]
    manifest.write_text("\n".join(rows) + "\n")
    return root


def test_check_and_split_take_the_manifests_own_tags(tiny_dataset):
    from napari_cellseg.classes import MICROSCOPES
    from napari_cellseg.data.dataset import DatasetError

    root = _retag(tiny_dataset, {"A": "D", "B": "D", "C": "E"})
    found = check_dataset(root, pixels=False)
    assert found.ok and found.counts() == {"D": 4, "E": 10}
    run = run_to_end(iter_run_split(root, SplitConfig(target="E", grouping=False)))
    assert run.table()[0] == ["subset", "D", "E", "total"] and run.table()[1][-1] == ["total", 4, 10, 14]
    split = read_split(run.path)
    assert {split[i] for i, tag in run.result.microscopes.items() if tag == "D"} == {"train"}
    # as `check` and `split --microscopes A B C` do, given tags still hold the manifest to them
    assert not check_dataset(root, MICROSCOPES, pixels=False).ok
    with pytest.raises(DatasetError, match="unknown microscope 'E'"):
        run_to_end(iter_run_split(root, SplitConfig(target="E"), microscopes=MICROSCOPES))
    (root / "manifest.csv").write_text((root / "manifest.csv").read_text().replace(",E", ",E?", 1))
    assert "microscope tag 'E?' is not a tag" in str(check_dataset(root, pixels=False).problems)


def test_split_run_notes_carry_the_splits_warnings(tmp_path):
    import numpy as np

    from napari_cellseg.data.writer import add_to_dataset

    root = tmp_path / "ds"
    for k in range(12):  # dev and test get C images without any cell
        image = np.full((32, 32), 9 * k, np.uint8)
        add_to_dataset(root, f"img{k:02d}", image, np.zeros((32, 32), np.uint16), "C" if k < 10 else "A")
    run = run_to_end(iter_run_split(root, SplitConfig(ratios=(0.8, 0.1, 0.1), grouping=False)))
    warned = [n for n in run.notes if n.startswith("Warning: ")]
    assert len(warned) == 2 and "dev holds 1 C image(s) and none has a labelled cell" in warned[0]


def test_check_notes_tags_that_differ_only_in_case(tiny_dataset):
    assert check_dataset(tiny_dataset, pixels=False).tag_note() == ""
    root = _retag(tiny_dataset, {"A": "a", "B": "B", "C": "C"})
    assert check_dataset(root, pixels=False).tag_note() == ""  # 'a' alone is one microscope
    manifest = root / "manifest.csv"
    lines = manifest.read_text().splitlines()
    first_c = next(k for k, line in enumerate(lines) if line.split(",")[1] == "C")
    lines[first_c] = lines[first_c].replace(",C", ",c", 1)
    manifest.write_text("\n".join(lines) + "\n")
    note = check_dataset(root, pixels=False).tag_note()
    assert note.startswith("the tags 'C' and 'c' differ only in case")
