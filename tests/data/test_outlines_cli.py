"""``napari-cellseg import-outlines``: QuPath outlines and their images into a dataset folder."""

from __future__ import annotations

import shutil

import numpy as np

from napari_cellseg.cli import main
from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.inference.outlines import write_geojson
from napari_cellseg.sample_data import SAMPLE_DIR


def test_images_with_outlines_become_a_dataset_and_the_others_are_named(tmp_path, capsys):
    samples = CellDataset.open(SAMPLE_DIR)
    slides, outlines = tmp_path / "slides", tmp_path / "qupath"
    slides.mkdir()
    outlines.mkdir()
    records = samples.records
    for record in records:
        shutil.copyfile(record.image_path, slides / record.image_path.name)
    for record in records[:3]:
        write_geojson(outlines / f"{record.id}.geojson", samples.load_instances(record.id))
    (outlines / f"{records[3].id}.geojson").write_text("{broken")
    dataset = tmp_path / "dataset"
    args = ["import-outlines", str(slides), "--outlines", str(outlines), "--dataset", str(dataset)]
    assert main([*args, "--microscope", "C", "--group", "slide-1"]) == 1  # one file failed
    captured = capsys.readouterr()
    assert "3 image(s) added" in captured.out and "2 without outlines, 1 failed" in captured.out
    assert f"{records[3].id}: failed: " in captured.err and "not valid JSON" in captured.err
    imported = CellDataset.open(dataset)
    assert sorted(imported.ids) == sorted(r.id for r in records[:3])
    for record in records[:3]:
        np.testing.assert_array_equal(imported.load_instances(record.id), samples.load_instances(record.id))
        assert imported[record.id].microscope == "C" and imported[record.id].group == "slide-1"

    for record in records[3:]:
        write_geojson(outlines / f"{record.id}.geojson", samples.load_instances(record.id))
    assert main([*args, "--microscope", "C"]) == 1  # the first three are listed: refused, named
    err = capsys.readouterr().err
    assert err.count("failed") == 3 and "overwrite" in err
    assert len(CellDataset.open(dataset)) == len(records)


def test_fiji_roi_sets_beside_the_images_are_found_too(tmp_path, capsys):
    from napari_cellseg.inference.outlines import write_imagej_rois

    samples = CellDataset.open(SAMPLE_DIR)
    record = samples.records[0]
    slides = tmp_path / "slides"
    slides.mkdir()
    shutil.copyfile(record.image_path, slides / record.image_path.name)
    write_imagej_rois(slides / f"{record.id}_rois.zip", samples.load_instances(record.id))
    assert main(["import-outlines", str(slides), "--dataset", str(tmp_path / "d"), "--microscope", "C"]) == 0
    assert "1 image(s) added" in capsys.readouterr().out
    imported = CellDataset.open(tmp_path / "d")
    np.testing.assert_array_equal(imported.load_instances(record.id), samples.load_instances(record.id))


def test_bad_arguments_are_refused(tmp_path, capsys):
    assert (
        main(["import-outlines", str(tmp_path), "--dataset", str(tmp_path / "d"), "--microscope", "D E"]) == 2
    )
    assert "--microscope: microscope tag 'D E' is not a tag: use 1-32 letters" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["import-outlines", str(empty), "--dataset", str(tmp_path / "d"), "--microscope", "C"]) == 2
    assert "no image files in" in capsys.readouterr().err


def test_images_of_one_name_in_two_folders_are_not_merged_into_one_id(tmp_path, capsys):
    samples = CellDataset.open(SAMPLE_DIR)
    record = samples.records[0]
    for slide in ("slideA", "slideB"):
        (tmp_path / slide).mkdir()
        shutil.copyfile(record.image_path, tmp_path / slide / "field1.png")
        write_geojson(tmp_path / slide / "field1.geojson", samples.load_instances(record.id))
    dataset = tmp_path / "dataset"
    args = ["import-outlines", str(tmp_path / "slideA"), str(tmp_path / "slideB"), "--dataset", str(dataset)]
    assert main([*args, "--microscope", "C", "--overwrite"]) == 1
    err = capsys.readouterr().err
    assert "slideB" in err and "same id as" in err and "slideA" in err
    assert CellDataset.open(dataset).ids == ["field1"]


def test_image_names_that_cannot_be_ids_get_the_annotate_panels_id_and_say_so(tmp_path, capsys):
    samples = CellDataset.open(SAMPLE_DIR)
    record = samples.records[0]
    qupath = tmp_path / "qupath"
    qupath.mkdir()
    names = ("patient 3 HE", "coupe é", "細胞", "核", "-lead")
    for name in names:
        shutil.copyfile(record.image_path, qupath / f"{name}.png")
        write_geojson(qupath / f"{name}.geojson", samples.load_instances(record.id))
    dataset = tmp_path / "dataset"
    assert main(["import-outlines", str(qupath), "--dataset", str(dataset), "--microscope", "C"]) == 0
    out = capsys.readouterr().out
    assert "5 image(s) added" in out
    assert "patient_3_HE: " in out and "(from 'patient 3 HE.png')" in out and "coupe_e-e7dba425: " in out
    assert "lead: " in out and "(from '-lead.png')" in out
    ids = CellDataset.open(dataset).ids
    assert {"patient_3_HE", "coupe_e-e7dba425", "lead"} < set(ids) and len(ids) == 5
    assert sum(i.startswith("image-") for i in ids) == 2  # no usable letter: a hash of the name each


def test_a_name_that_is_an_id_already_keeps_it():
    """slide7_ (imported so before, and segment's output name) must not come back as slide7."""
    from napari_cellseg.data.outlines_import import dataset_id

    assert dataset_id("slide7_") == "slide7_" and dataset_id("_lead") == "_lead"
    assert dataset_id("patient 3 HE") == "patient_3_HE" and dataset_id("-lead") == "lead"
    # the Annotate panel's rule (docs/guide.md): accents transliterated, and a hash of the name
    assert dataset_id("Patient Müller 1") == "Patient_Muller_1-6dd08d2c"


def _outlined(folder, name, record, samples, flip=False):
    """``folder/<name>.png`` (the sample's pixels, flipped: another image) and its outlines."""
    from PIL import Image

    from napari_cellseg.io import read_image

    folder.mkdir(parents=True, exist_ok=True)
    image = read_image(record.image_path)
    Image.fromarray(np.ascontiguousarray(image[::-1] if flip else image)).save(folder / f"{name}.png")
    cells = samples.load_instances(record.id)
    write_geojson(folder / f"{name}.geojson", cells[::-1] if flip else cells)
    return folder / f"{name}.png"


def test_two_patients_whose_names_differ_in_an_accent_get_two_ids(tmp_path, capsys):
    """Müller and Möller once both became Patient_M_ller_1, and --overwrite replaced one with the other."""
    samples = CellDataset.open(SAMPLE_DIR)
    record = samples.records[0]
    _outlined(tmp_path / "muller", "Patient Müller 1", record, samples)
    _outlined(tmp_path / "moller", "Patient Möller 1", record, samples, flip=True)
    dataset = tmp_path / "dataset"
    for folder in ("muller", "moller"):  # two runs, as a lab adds its patients one by one
        args = ["import-outlines", str(tmp_path / folder), "--dataset", str(dataset), "--microscope", "C"]
        assert main(args) == 0, capsys.readouterr().err
    imported = CellDataset.open(dataset)
    assert sorted(imported.ids) == ["Patient_Moller_1-74672ee0", "Patient_Muller_1-6dd08d2c"]
    np.testing.assert_array_equal(
        imported.load_image("Patient_Moller_1-74672ee0")[::-1],
        imported.load_image("Patient_Muller_1-6dd08d2c"),
    )
    assert imported["Patient_Muller_1-6dd08d2c"].extra["source_file"] == str(
        (tmp_path / "muller" / "Patient Müller 1.png").resolve()
    )


def test_an_image_imported_under_the_old_id_is_found_again(tmp_path, capsys):
    """Imported before accents got a hash (Patient_M_ller_1): a re-import replaces it, never adds it twice."""
    from napari_cellseg.data.writer import add_to_dataset
    from napari_cellseg.io import read_image

    samples = CellDataset.open(SAMPLE_DIR)
    record = samples.records[0]
    image = _outlined(tmp_path / "slides", "Patient Müller 1", record, samples)
    dataset = tmp_path / "dataset"
    add_to_dataset(dataset, "Patient_M_ller_1", read_image(image), samples.load_instances(record.id), "C")
    args = ["import-outlines", str(tmp_path / "slides"), "--dataset", str(dataset), "--microscope", "C"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "Patient_M_ller_1: failed: in the dataset as 'Patient_M_ller_1' (its id before accents" in err
    assert "records no source file" in err and "same pixels" in err and "--overwrite" in err
    assert main([*args, "--overwrite"]) == 0, capsys.readouterr().err
    assert "Patient_M_ller_1: " in capsys.readouterr().out
    assert CellDataset.open(dataset).ids == ["Patient_M_ller_1"]


def test_another_file_under_an_id_already_imported_is_named_and_not_offered_overwrite(tmp_path, capsys):
    samples = CellDataset.open(SAMPLE_DIR)
    record = samples.records[0]
    first = _outlined(tmp_path / "slideA", "field1", record, samples)
    second = _outlined(tmp_path / "slideB", "field1", record, samples, flip=True)
    dataset = tmp_path / "dataset"
    base = ["--dataset", str(dataset), "--microscope", "C"]
    assert main(["import-outlines", str(tmp_path / "slideA"), *base]) == 0
    capsys.readouterr()
    assert main(["import-outlines", str(tmp_path / "slideB"), *base]) == 1
    err = capsys.readouterr().err
    assert f"imported from {first.resolve()}" in err and f"{second} is a different image" in err
    assert "--overwrite" not in err and "rename field1.png" in err
    assert main(["import-outlines", str(tmp_path / "slideA"), *base]) == 1  # the same file again
    err = capsys.readouterr().err
    assert "imported from this file" in err and "(replace it with --overwrite)" in err


def test_a_labs_own_microscope_tag_is_taken(tmp_path, capsys):
    samples = CellDataset.open(SAMPLE_DIR)
    record = samples.records[0]
    slides = tmp_path / "slides"
    slides.mkdir()
    shutil.copyfile(record.image_path, slides / record.image_path.name)
    write_geojson(slides / f"{record.id}.geojson", samples.load_instances(record.id))
    args = ["import-outlines", str(slides), "--dataset", str(tmp_path / "d"), "--microscope", "zeiss2"]
    assert main(args) == 0, capsys.readouterr().err
    assert CellDataset.open(tmp_path / "d")[record.id].microscope == "zeiss2"
