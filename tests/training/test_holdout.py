"""Test-set scores for the experiment tables: AP, DSB, merged touching cells, spread over groups."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.training.holdout import HoldoutScores, holdout_ids, iter_score_holdout, score_classical


@pytest.fixture
def grouped_split(tiny_dataset, tmp_path):
    """The four crops of c_histology_1 are the test rows, in two groups of two."""
    dataset = CellDataset.open(tiny_dataset)
    lines = ["id,microscope,subset,group"]
    for record in dataset:
        if record.id.startswith("c_histology_1_crop"):
            group = "g1" if record.id[-1] in "01" else "g2"
            lines.append(f"{record.id},C,test,{group}")
        else:
            lines.append(f"{record.id},{record.microscope},train,")
    path = tmp_path / "split.csv"
    path.write_text("\n".join(lines) + "\n")
    return tiny_dataset, path, dataset


def _run(generator):
    reports = []
    while True:
        try:
            reports.append(next(generator))
        except StopIteration as stop:
            return stop.value, reports


def test_perfect_and_merging_segmenters(grouped_split):
    data, split, dataset = grouped_split
    assert [g for _, g in holdout_ids(split, dataset)] == ["g1", "g1", "g2", "g2"]
    truth = {
        dataset.load_image(i).tobytes(): dataset.load_reference_instances(i)
        for i, _ in holdout_ids(split, dataset)
    }

    def perfect(image):
        return truth[image.tobytes()]

    scores, reports = _run(iter_score_holdout(perfect, data, split, name="perfect"))
    assert [r.done for r in reports] == [1, 2, 3, 4] and reports[-1].total == 4
    assert scores.n_images == 4 and scores.n_cells == sum(int(t.max()) for t in truth.values())
    assert scores.ap50 == 1.0 and scores.dsb_score == 1.0 and scores.merged_touching == 0.0
    assert scores.touching_pairs > 0 and scores.group_ap50 == {"g1": 1.0, "g2": 1.0}
    assert scores.group_stats() == (1.0, 1.0, 1.0)

    def one_blob(image):
        return (truth[image.tobytes()] > 0).astype(np.uint16)

    blob, _ = _run(iter_score_holdout(one_blob, data, split, name="blob"))
    assert blob.merged_touching == 1.0 and blob.ap50 < 0.2 and blob.touching_pairs == scores.touching_pairs
    assert HoldoutScores.from_dict(blob.to_dict()) == blob


def test_errors_name_the_problem(grouped_split):
    data, split, _ = grouped_split
    with pytest.raises(ValueError, match=r"segmenting c_histology_1_crop0 gave shape \(3, 3\)"):
        _run(iter_score_holdout(lambda image: np.zeros((3, 3), np.uint16), data, split, name="bad"))
    with pytest.raises(ValueError, match="no test images of microscope 'A'"):
        _run(iter_score_holdout(lambda image: image, data, split, microscope="A"))


def test_classical_scores_are_cached(grouped_split, tmp_path, monkeypatch):
    import napari_cellseg.inference.classical as classical

    data, split, _ = grouped_split
    first = score_classical(data, split, cache_dir=tmp_path)
    assert (tmp_path / "holdout_test_C.json").is_file() and 0 < first.ap50 < 1
    assert first.key.startswith("classical:")

    def not_again(image, **kwargs):
        raise AssertionError("the cached scores should have been used")

    monkeypatch.setattr(classical, "classical_segmentation", not_again)
    assert score_classical(data, split, cache_dir=tmp_path) == first
