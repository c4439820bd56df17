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
