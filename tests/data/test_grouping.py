"""Near-duplicate grouping: seams between tiles of one field, repeated thumbnails, merged groups."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.data.grouping import (
    GroupingConfig,
    NearDuplicatePair,
    find_near_duplicates,
    find_seams,
    find_similar_thumbnails,
    fingerprint,
    iter_near_duplicates,
    merge_groups,
)
from napari_cellseg.data.split import split_dataset
from napari_cellseg.data.writer import add_to_dataset
from napari_cellseg.sample_data import load_sample


def _quadrants(image: np.ndarray) -> list[np.ndarray]:
    """Top-left, top-right, bottom-left, bottom-right tiles."""
    h, w = image.shape[0] // 2, image.shape[1] // 2
    return [image[:h, :w], image[:h, w : 2 * w], image[h : 2 * h, :w], image[h : 2 * h, w : 2 * w]]


def test_seams_join_the_tiles_of_one_field_only():
    first = _quadrants(load_sample("c_histology_1")[0])
    second = _quadrants(load_sample("c_histology_2")[0])
    prints = [fingerprint(t) for t in first + second]
    found = {(i, j) for i, j, _ in find_seams(prints, GroupingConfig())}
    # 0|1 and 2|3 side by side, 0/2 and 1/3 stacked, in each field.
    expected = {(0, 1), (2, 3), (0, 2), (1, 3)}
    assert found == expected | {(i + 4, j + 4) for i, j in expected}


def test_near_duplicates_of_a_dataset_by_id_with_progress(tmp_path):
    image, labels, _ = load_sample("c_histology_1")
    for name, tile, tile_labels in zip("abcd", _quadrants(image), _quadrants(labels)):
        add_to_dataset(tmp_path, f"tile-{name}", tile, tile_labels, "C")
    ds = CellDataset.open(tmp_path)
    reports = list(iter_near_duplicates(ds))
    assert [r.done for r in reports] == [1, 2, 3, 4, 4] and reports[-1].pairs is not None
    pairs = find_near_duplicates(ds, ["tile-a", "tile-b", "tile-d"])
    assert [(p.first, p.second, p.cue) for p in pairs] == [
        ("tile-a", "tile-b", "seam"), ("tile-b", "tile-d", "seam"),
    ]  # fmt: skip


def test_seams_need_structure_not_just_equal_flat_edges():
    rng = np.random.default_rng(0)
    flat = [np.full((32, 32), 10, np.uint8) for _ in range(3)]
    noise = [rng.integers(0, 4, (32, 32), dtype=np.uint8) for _ in range(3)]  # dark noisy background
    prints = [fingerprint(t) for t in flat + noise]
    assert find_seams(prints, GroupingConfig()) == []


def test_repeated_field_is_found_by_thumbnail():
    image = load_sample("a_fluorescence_1")[0]
    other = load_sample("a_fluorescence_2")[0]
    brighter = np.clip(image.astype(np.int32) + 20, 0, 255).astype(np.uint8)
    prints = [fingerprint(image), fingerprint(other), fingerprint(brighter)]
    assert [(i, j) for i, j, _ in find_similar_thumbnails(prints, GroupingConfig())] == [(0, 2)]


def test_fingerprint_refuses_bad_shapes():
    with pytest.raises(ValueError, match=r"got \(5,\)"):
        fingerprint(np.zeros(5, np.uint8))


def test_merge_groups_joins_manifest_groups_and_pairs():
    ids = ["a", "b", "c", "d", "e", "f"]
    explicit = {"a": "slide1", "b": "slide1", "c": None, "d": "slide2", "e": None, "f": None}
    pairs = [NearDuplicatePair("b", "c", "seam", 1.0), NearDuplicatePair("e", "f", "seam", 1.0)]
    groups = merge_groups(ids, explicit, pairs)
    assert groups == {
        "a": "slide1", "b": "slide1", "c": "slide1", "d": "slide2", "e": "auto:e", "f": "auto:e",
    }  # fmt: skip
    # An id equal to another image's group name must not merge with that group.
    assert merge_groups(["x", "slide1"], {"x": "slide1", "slide1": None}) == {
        "x": "slide1",
        "slide1": "id:slide1",
    }


def _seam_pairs_by_plain_numpy(images: dict[str, np.ndarray]) -> set[tuple[str, str]]:
    """Reference near-duplicate pairs: one image's last row/column continues into another's first.

    Independent of the package code (images of one size only): a seam is accepted
    when the edges correlate > 0.9 and the jump across it is no larger than 1.2x
    the jumps between neighbouring rows inside the two images.
    """
    ids = list(images)
    grey = np.stack(
        [v.astype(np.float64).mean(axis=-1) if v.ndim == 3 else v.astype(np.float64) for v in images.values()]
    )
    found = set()
    for stack in (grey, grey.transpose(0, 2, 1)):  # rows, then columns
        last, before_last, first, after_first = stack[:, -1], stack[:, -2], stack[:, 0], stack[:, 1]
        jump = np.abs(last[:, None, :] - first[None, :, :]).mean(axis=-1)
        inside = (
            np.abs(last - before_last).mean(axis=-1)[:, None]
            + np.abs(first - after_first).mean(axis=-1)[None, :]
        ) / 2
        z_last = (last - last.mean(1, keepdims=True)) / (
            last.std(1, keepdims=True) * last.shape[1] ** 0.5 + 1e-9
        )
        z_first = (first - first.mean(1, keepdims=True)) / (
            first.std(1, keepdims=True) * first.shape[1] ** 0.5 + 1e-9
        )
        seam = (z_last @ z_first.T > 0.9) & (jump < 1.2 * inside)
        np.fill_diagonal(seam, False)
        found |= {tuple(sorted((ids[i], ids[j]))) for i, j in zip(*np.nonzero(seam))}
    return found


@pytest.mark.shared_data
def test_dsb2018_near_duplicates_stay_together_only_with_grouping(shared_data):
    """The 107 C crops of dsb2018-dev are mostly 2x2 tiles of larger fields.

    Thumbnail correlation finds no pair there (the tiles show different cells);
    the seams between tiles do. With grouping no tile pair crosses subsets;
    without it most pairs would.
    """
    ds = CellDataset.open(shared_data / "dsb2018-dev")
    target = [r.id for r in ds if r.microscope == "C"]
    reference = _seam_pairs_by_plain_numpy({i: ds.load_image(i) for i in target})
    assert len(reference) >= 80
    grouped = split_dataset(ds, "C")
    found = {(p.first, p.second) for p in grouped.pairs}  # what find_near_duplicates gives
    assert reference <= found
    assert sum(grouped.subsets[a] != grouped.subsets[b] for a, b in reference) == 0
    assert grouped.crossing_pairs() == []
    ungrouped = split_dataset(ds, "C", grouping=False)
    crossing = sum(ungrouped.subsets[a] != ungrouped.subsets[b] for a, b in reference)
    print(f"dsb2018-dev C: {len(reference)} tile pairs; without grouping {crossing} cross subsets")
    assert crossing > len(reference) // 4


def test_one_pixel_lines_are_left_out_of_the_search_not_fatal(tmp_path):
    image, labels, _ = load_sample("c_histology_1")
    for name, tile, tile_labels in zip("ab", _quadrants(image), _quadrants(labels)):
        add_to_dataset(tmp_path, f"tile-{name}", tile, tile_labels, "C")
    add_to_dataset(tmp_path, "line", image[:1], labels[:1], "C")
    pairs = find_near_duplicates(CellDataset.open(tmp_path))
    assert [(p.first, p.second) for p in pairs] == [("tile-a", "tile-b")]
