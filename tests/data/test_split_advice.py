"""The advice of an impossible split: every count or ratio it offers is checked to work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from napari_cellseg.data.dataset import CellDataset, ImageRecord
from napari_cellseg.data.split import SplitError, split_dataset


def fake_dataset(counts: dict[str, int]) -> CellDataset:
    """Records only (no files): splitting without grouping never reads pixels."""
    records = [
        ImageRecord(
            f"{m}{k:04d}", m, None, Path(f"{m}{k}.png"), Path(f"{m}{k}.tif"), "masks", (8, 8), 1, "uint8"
        )
        for m, n in counts.items()
        for k in range(n)
    ]
    return CellDataset("/nonexistent", records)


def split_error(counts, ratios) -> str | None:
    try:
        split_dataset(fake_dataset(counts), "C", ratios=ratios, grouping=False)
    except SplitError as err:
        return str(err)
    return None


CASES = [
    ({"A": 3, "B": 1, "C": 2}, (0.9, 0.05, 0.05)),  # the demo dataset
    ({"A": 3, "C": 2}, (0.95, 0.05, 0.0)),
    ({"A": 10, "C": 1}, (0.9, 0.1, 0.0)),
    ({"A": 3, "C": 3}, (0.9, 0.05, 0.05)),
    ({"A": 650, "C": 10}, (0.9, 0.05, 0.05)),
    ({"A": 553, "C": 107}, (0.8, 0.1, 0.1)),
    ({"A": 2000, "C": 5}, (0.9, 0.05, 0.05)),
    ({"A": 10, "C": 5}, (0.3, 0.35, 0.35)),
    ({"A": 40, "C": 4}, (0.8, 0.1, 0.1)),
]


@pytest.mark.parametrize(("counts", "ratios"), CASES)
def test_every_piece_of_advice_works(counts, ratios):
    message = split_error(counts, ratios)
    assert message is not None and "train must hold more C images" in message
    offered = 0
    need = re.search(r"needs at least (\d+) C images", message)
    if need:  # that many C images (the other images as they are) split; one fewer does not
        n = int(need.group(1))
        assert split_error({**counts, "C": n}, ratios) is None
        assert split_error({**counts, "C": n - 1}, ratios) is not None
        offered += 1
    no_test = re.search(r"\((\d+) without a test set\)", message)
    if no_test:
        n, zero_test = int(no_test.group(1)), (ratios[0] + ratios[2], ratios[1], 0.0)
        assert split_error({**counts, "C": n}, zero_test) is None
        assert split_error({**counts, "C": n - 1}, zero_test) is not None
    example = re.search(r"e\.g\. ratios ([\d.]+) ([\d.]+) ([\d.]+) \(dev (\d+), test (\d+)", message)
    if example:  # the suggested ratios split these very images, with 3 decimals at most
        suggested = tuple(float(v) for v in example.group(1, 2, 3))
        assert all(len(v.split(".")[-1]) <= 3 for v in example.group(1, 2, 3))
        result = split_dataset(fake_dataset(counts), "C", ratios=suggested, grouping=False)
        assert result.quotas == {"dev": int(example.group(4)), "test": int(example.group(5))}
        offered += 1
    if re.search(r"smaller dev|test ratio of 0", message):  # no ratio advice without a checked example
        assert example, message
    if "No ratios can split" in message:
        assert counts["C"] < 3 and not example
    assert offered, message


def test_demo_dataset_is_not_told_that_a_test_ratio_of_0_helps():
    """2 C images: a test ratio of 0 leaves 1 for train and 1 for dev, which fails too."""
    message = split_error({"A": 3, "B": 1, "C": 2}, (0.9, 0.05, 0.05))
    assert "test ratio of 0" not in message and "smaller dev/test ratios" not in message
    assert message.endswith(
        "No ratios can split 2 C images: this needs at least 4 C images (3 without a test set)"
    )
    assert split_error({"A": 3, "B": 1, "C": 2}, (0.95, 0.05, 0.0)) is not None


def test_a_test_ratio_of_0_is_offered_where_it_works():
    message = split_error({"A": 3, "C": 3}, (0.9, 0.05, 0.05))
    assert (
        "or a test ratio of 0 (no test set), e.g. ratios 0.95 0.05 0 (dev 1, test 0, train 2 C images)"
        in message
    )
    assert split_error({"A": 3, "C": 3}, (0.95, 0.05, 0.0)) is None


def test_the_images_needed_count_the_growing_pool():
    """Added C images grow the pool and its dev/test quotas: 100 C images of 750 would still fail."""
    message = split_error({"A": 650, "C": 10}, (0.9, 0.05, 0.05))
    assert "needs at least 115 C images (73 without a test set)" in message
    assert split_error({"A": 650, "C": 100}, (0.9, 0.05, 0.05)) is not None


def test_ratios_more_images_cannot_fix_are_said_so():
    message = split_error({"A": 10, "C": 5}, (0.3, 0.35, 0.35))
    assert "More C images cannot help with these ratios: use smaller dev/test ratios, e.g. ratios" in message


def _grouped(counts, manifest_groups, near_duplicate_groups, monkeypatch) -> CellDataset:
    """A fake dataset whose near-duplicate search (monkeypatched: no pixels) joins the given ids."""
    from napari_cellseg.data import split as split_module
    from napari_cellseg.data.grouping import GroupingProgress, NearDuplicatePair

    pairs = tuple(
        NearDuplicatePair(ids[0], other, "seam", 1.0) for ids in near_duplicate_groups for other in ids[1:]
    )

    def search(dataset, ids, config):
        yield GroupingProgress(len(ids), len(ids), pairs)

    monkeypatch.setattr(split_module, "iter_near_duplicates", search)
    records = [
        ImageRecord(
            f"{m}{k:04d}",
            m,
            manifest_groups.get(f"{m}{k:04d}"),
            Path("x.png"),
            Path("x.tif"),
            "masks",
            (8, 8),
            1,
            "uint8",
        )
        for m, n in counts.items()
        for k in range(n)
    ]
    return CellDataset("/nonexistent", records)


def test_a_manifest_group_too_large_is_named_and_no_grouping_is_not_offered(monkeypatch):
    """--no-grouping keeps the manifest's groups: it cannot help, and the user was told it would."""
    dataset = _grouped({"D": 3}, dict.fromkeys(["D0000", "D0001", "D0002"], "slide-7"), [], monkeypatch)
    with pytest.raises(SplitError) as caught:
        split_dataset(dataset, "D", ratios=(0.75, 0.25, 0))
    message = str(caught.value)
    assert message.startswith("no group of D images fits in dev (1 images): the smallest group has 3 images")
    assert "'slide-7' (3 images)" in message and "edit the manifest's group column" in message
    assert "add D images from other slides" in message and "use --no-grouping" not in message
    assert "larger ratios" not in message  # no ratio splits one group of 3
    with pytest.raises(SplitError, match="'slide-7'"):
        split_dataset(dataset, "D", ratios=(0.75, 0.25, 0), grouping=False)


def test_groups_made_by_the_near_duplicate_search_are_told_to_try_no_grouping(monkeypatch):
    tiles = [[f"C{k:04d}" for k in range(start, start + 4)] for start in range(0, 40, 4)]
    dataset = _grouped({"A": 60, "C": 40}, {}, tiles, monkeypatch)
    with pytest.raises(SplitError) as caught:
        split_dataset(dataset, "C", ratios=(0.94, 0.03, 0.03))
    message = str(caught.value)
    assert "joined by the near-duplicate search" in message and "--no-grouping" in message
    assert "manifest" not in message
    split_dataset(dataset, "C", ratios=(0.94, 0.03, 0.03), grouping=False)  # the advice works
    example = re.search(r"e\.g\. ratios ([\d.]+) ([\d.]+) ([\d.]+)", message)
    assert example, message  # and the larger ratios it offers split the groups as they are
    split_dataset(dataset, "C", ratios=tuple(float(v) for v in example.group(1, 2, 3)))


def test_a_manifest_group_joined_with_near_duplicates_is_named(monkeypatch):
    """Near-duplicates join a manifest group that is too large already: only the manifest can help."""
    manifest = {f"C{k:04d}": f"slide{k // 5}" for k in range(20)}  # four slides of 5 C images
    dataset = _grouped({"A": 80, "C": 20}, manifest, [["C0004", "C0005"]], monkeypatch)
    with pytest.raises(SplitError) as caught:
        split_dataset(dataset, "C", ratios=(0.94, 0.03, 0.03))
    message = str(caught.value)
    assert "'slide0' (5 images)" in message and "--no-grouping keeps the manifest's groups" in message
    assert "joined by the near-duplicate search" not in message


@pytest.mark.parametrize("ratios", [(0.9, 0.05, 0.05), (0.6, 0.2, 0.2)])
def test_a_small_lab_dataset_of_few_slides_is_offered_a_split_without_test_set(monkeypatch, ratios):
    """Six D images from three slides: dev and test cannot both take a slide, dev alone can."""
    slides = {f"D{k:04d}": f"slide{k // 2}" for k in range(6)}
    dataset = _grouped({"D": 6}, slides, [], monkeypatch)
    with pytest.raises(SplitError) as caught:
        split_dataset(dataset, "D", ratios=ratios)
    message = str(caught.value)
    example = re.search(
        r"use a test ratio of 0 \(no test set\), e\.g\. ratios ([\d.]+) ([\d.]+) (0)", message
    )
    assert example, message
    result = split_dataset(dataset, "D", ratios=tuple(float(v) for v in example.group(1, 2, 3)))
    assert result.counts()["train"]["D"] == 4 and result.counts()["dev"]["D"] == 2
