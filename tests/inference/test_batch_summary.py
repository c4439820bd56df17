"""The batch's summary line: images given outputs from their stored cells are not counted as segmented."""

from __future__ import annotations

import pytest
from tiny_models import save_fitted_model, write_sample_images

from napari_cellseg.cli import main
from napari_cellseg.inference.batch import BatchSummary, FileReport
from napari_cellseg.io import read_tiff_layer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return save_fitted_model(tmp_path_factory.mktemp("model"))


def test_describe_counts_each_outcome_once():
    reports = [
        FileReport("a.png", "a", "done"),
        FileReport("b.png", "b", "done", added=("measurements", "geojson")),
        FileReport("c.png", "c", "skipped"),
        FileReport("d.png", "d", "failed"),
    ]
    assert BatchSummary(reports).describe() == (
        "4 image(s): 1 segmented, 1 given extra outputs from their stored cells, "
        "1 skipped (output exists), 1 failed"
    )
    plain = BatchSummary(reports[:1] + reports[2:])  # nothing added: the line says nothing of it
    assert plain.describe() == "3 image(s): 1 segmented, 1 skipped (output exists), 1 failed"


def test_a_rerun_asking_only_for_extra_outputs_says_so(tmp_path, model_dir, capsys):
    paths = write_sample_images(tmp_path / "in")
    args = ["segment", str(tmp_path / "in"), "--model", str(model_dir), "--out", str(tmp_path / "out")]
    assert main([*args, "--tile", "128", "--quiet"]) == 0
    assert "2 image(s): 2 segmented, 0 skipped" in capsys.readouterr().out
    stored = [read_tiff_layer(tmp_path / "out" / f"{p.stem}.tif")[0] for p in paths]
    assert main([*args, "--tile", "128", "--quiet", "--geojson", "--imagej-rois"]) == 0
    stdout = capsys.readouterr().out
    assert "2 image(s): 0 segmented, 2 given extra outputs from their stored cells, 0 skipped" in stdout
    for path, cells in zip(paths, stored):  # not segmented again
        assert (read_tiff_layer(tmp_path / "out" / f"{path.stem}.tif")[0] == cells).all()
    assert main([*args, "--tile", "128", "--quiet", "--geojson"]) == 0  # nothing left to add
    assert "2 image(s): 0 segmented, 2 skipped (output exists)" in capsys.readouterr().out
