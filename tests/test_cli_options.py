"""One spelling and one behaviour per option across the ``napari-cellseg`` subcommands."""

from __future__ import annotations

import shutil

from napari_cellseg.cli import main
from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.sample_data import SAMPLE_DIR


def _one_slide_with_outlines(tmp_path):
    from napari_cellseg.inference.outlines import write_geojson

    samples = CellDataset.open(SAMPLE_DIR)
    record = samples.records[0]
    slides = tmp_path / "slides"
    slides.mkdir()
    shutil.copyfile(record.image_path, slides / record.image_path.name)
    write_geojson(slides / f"{record.id}.geojson", samples.load_instances(record.id))
    return slides


def test_import_outlines_takes_data_as_every_command_and_still_dataset(tmp_path, capsys):
    slides = _one_slide_with_outlines(tmp_path)
    assert main(["import-outlines", str(slides), "--data", str(tmp_path / "new"), "--microscope", "C"]) == 0
    assert len(CellDataset.open(tmp_path / "new")) == 1
    assert (
        main(["import-outlines", str(slides), "--dataset", str(tmp_path / "old"), "--microscope", "C"]) == 0
    )
    assert len(CellDataset.open(tmp_path / "old")) == 1
    capsys.readouterr()
    (tmp_path / "file").write_text("")
    assert main(["import-outlines", str(slides), "--data", str(tmp_path / "file"), "--microscope", "C"]) == 2
    assert f"--data {tmp_path / 'file'} is a file" in capsys.readouterr().err
