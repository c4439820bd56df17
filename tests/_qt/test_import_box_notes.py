"""Dataset panel > Add images outlined in QuPath: what the import noticed about each image is listed."""

from __future__ import annotations

import json

import numpy as np


def _square(x: float, y: float, size: float = 12) -> dict:
    ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": {}}


def _write(folder, stem: str, *features, grey: int = 90) -> None:
    import imageio.v3 as iio

    iio.imwrite(folder / f"{stem}.png", np.full((40, 50), grey, np.uint8))
    (folder / f"{stem}.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))


def _import(make_napari_viewer, wait_for_job, slides, dataset, times: int = 1):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Dataset")
    widget.dataset_edit.setText(str(dataset))
    widget.import_box.images_edit.setText(str(slides))
    for _ in range(times):
        widget.import_box.import_button.click()
        assert wait_for_job(widget).error is None
    lines = [widget.problems_list.item(i).text() for i in range(widget.problems_list.count())]
    return widget.message.text(), lines


def test_an_added_images_notes_and_new_id_are_listed_against_it(make_napari_viewer, wait_for_job, tmp_path):
    slides = tmp_path / "slides"
    slides.mkdir()
    _write(slides, "slide7", _square(5000, 5000))  # its only outline lies outside it
    _write(slides, "patient 3 HE", _square(5, 5))  # a name that is no id
    _write(slides, "plain", _square(5, 5))  # nothing to say about it
    message, lines = _import(make_napari_viewer, wait_for_job, slides, tmp_path / "ds")
    assert message.startswith("Added 3 image(s) with 2 cells") and "Notes on 2 of them" in message
    assert len(lines) == 2, lines
    assert lines[0] == "patient_3_HE: added, 1 cells: from 'patient 3 HE.png'"
    assert lines[1].startswith("slide7: added, 0 cells: 1 outline(s) hold no pixel centre of the image")


def test_an_image_already_in_the_dataset_is_left_as_it_is_without_cli_advice(
    make_napari_viewer, wait_for_job, tmp_path
):
    slides = tmp_path / "slides"
    slides.mkdir()
    _write(slides, "s1", _square(5, 5))
    message, lines = _import(make_napari_viewer, wait_for_job, slides, tmp_path / "ds", times=2)
    source = (slides / "s1.png").resolve()
    assert len(lines) == 1, lines
    # the file the manifest recorded, and how the panels replace it (no command-line flag)
    assert lines[0].startswith(
        f"s1: already in the dataset, imported from this file ({source}): left as it is"
    )
    assert "'Replace the saved image if this id exists' ticked" in lines[0] and "as 's1'" in lines[0]
    assert "overwrite" not in lines[0] and "overwrite" not in message
    assert "1 already in the dataset, left unchanged: see the list" in message


def test_another_image_under_a_listed_id_is_left_out_and_told_to_rename(
    make_napari_viewer, wait_for_job, tmp_path
):
    first, second = tmp_path / "slideA", tmp_path / "slideB"
    for folder, grey in ((first, 90), (second, 200)):  # one name, other pixels
        folder.mkdir()
        _write(folder, "field1", _square(5, 5), grey=grey)
    _import(make_napari_viewer, wait_for_job, first, tmp_path / "ds")
    message, lines = _import(make_napari_viewer, wait_for_job, second, tmp_path / "ds")
    assert lines == [
        f"field1: already in the dataset (imported from {(first / 'field1.png').resolve()}) as another "
        f"image: {second / 'field1.png'} is a different image given the same id; rename field1.png to "
        "give it an id of its own"
    ]
    assert "1 left out: see the list" in message and "left unchanged" not in message
    assert "Replace the saved image" not in lines[0]  # replacing would lose the other image


def test_the_command_line_keeps_its_overwrite_advice(tmp_path, capsys):
    from napari_cellseg.cli import main

    slides = tmp_path / "slides"
    slides.mkdir()
    _write(slides, "s1", _square(5, 5))
    args = ["import-outlines", str(slides), "--dataset", str(tmp_path / "ds"), "--microscope", "C"]
    assert main(args) == 0
    assert main(args) == 1  # refused: a failure, as before
    err = capsys.readouterr().err
    assert "s1: failed: already in the dataset, imported from this file" in err
    assert err.rstrip().endswith("(replace it with --overwrite)")
    assert main([*args, "--overwrite"]) == 0
