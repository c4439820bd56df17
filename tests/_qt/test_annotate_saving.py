"""Annotate: ids that keep images apart, 'Replace' bound to one image, the user's box choices kept,
and the cells sent from Segment saved as they are."""

from __future__ import annotations

import unicodedata

import numpy as np

from napari_cellseg.app.annotation import suggest_image_id
from napari_cellseg.classes import INTERIOR
from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.data.manifest import check_id


def _panel(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotate")
    return viewer, widget


def _two_cells(shape=(16, 20)) -> np.ndarray:
    cells = np.zeros(shape, np.uint16)
    cells[2:10, 2:9], cells[2:10, 9:16] = 1, 2  # touching
    return cells


def test_names_differing_only_in_non_ascii_letters_get_distinct_valid_ids():
    ids = [suggest_image_id(name, distinct=True) for name in ("Patient Müller 1", "Patient Möller 1")]
    assert ids[0] != ids[1] and all(check_id(i) is None for i in ids)
    assert ids[0].startswith("Patient_Muller_1-") and ids[1].startswith("Patient_Moller_1-")
    decomposed = unicodedata.normalize("NFD", "Patient Müller 1")  # as macOS names files
    assert suggest_image_id(decomposed, distinct=True) == ids[0]
    assert check_id(suggest_image_id("細胞", distinct=True)) is None
    # ASCII names keep the id they always had: a dataset's own images are named by their id
    assert suggest_image_id("scan 1", distinct=True) == "scan_1"
    assert suggest_image_id("Patient_M_ller_1", distinct=True) == "Patient_M_ller_1"
    assert suggest_image_id("x", {"id": "given"}, distinct=True) == "given"
    assert suggest_image_id("coupe é") == "coupe"  # without distinct: the import's rule, unchanged


def test_replace_applies_only_to_the_image_it_was_ticked_for(make_napari_viewer, tmp_path, wait_for_job):
    viewer, widget = _panel(make_napari_viewer)
    first, second = _two_cells(), _two_cells()[::-1].copy()
    images = []
    for name, cells in (("Patient Müller 1", first), ("Patient Möller 1", second)):
        images.append(
            viewer.add_image(np.full(cells.shape, 9, np.uint8), name=name, metadata={"microscope": "C"})
        )
        viewer.add_labels(cells, name=f"{name} cells")
    root = tmp_path / "ds"
    widget.dataset_edit.setText(str(root))
    widget.save_what_combo.setCurrentText("cells (instances)")

    def save():
        widget.save_button.click()
        assert wait_for_job(widget).error is None
        return widget.message.text()

    widget.image_combo.set_layer(images[0])
    assert save().startswith("saved")
    widget.overwrite_check.setChecked(True)
    assert save().startswith("replaced")  # says what it did
    widget.image_combo.set_layer(images[1])
    assert not widget.overwrite_check.isChecked()
    assert save().startswith("saved")
    dataset = CellDataset.open(root)
    assert len(dataset) == 2
    saved = {i: dataset.load_instances(i) for i in dataset.ids}
    assert any(np.array_equal(labels, first) for labels in saved.values())

    widget.overwrite_check.setChecked(True)  # other labels chosen: not what it was ticked for
    widget.cells_combo.setCurrentText("Patient Müller 1 cells")
    assert not widget.overwrite_check.isChecked()
    widget.overwrite_check.setChecked(True)
    widget.id_edit.setText("another-id")
    assert not widget.overwrite_check.isChecked()
    widget.overwrite_check.setChecked(True)
    widget.dataset_edit.setText(str(tmp_path / "other"))
    assert not widget.overwrite_check.isChecked()


def test_a_users_choice_of_none_survives_layers_added(make_napari_viewer, wait_for_job):
    viewer, widget = _panel(make_napari_viewer)
    viewer.add_image(np.zeros((16, 20), np.uint8), name="img")
    cells = _two_cells()
    viewer.add_labels(cells, name="img cells")
    widget.image_combo.setCurrentText("img")
    widget.open_button.click()
    annotation = viewer.layers["img boundary annotation"]
    annotation.data_setitem(np.nonzero(cells), INTERIOR)  # the two cells joined by hand
    widget.cells_combo.setCurrentText("(none)")  # as the guide says, before adding boundaries
    viewer.add_points(np.zeros((0, 2)), name="notes")
    viewer.add_labels(np.zeros((16, 20), np.uint16), name="img other")
    assert widget.cells_combo.currentText() == "(none)"
    assert widget.annotation_combo.currentText() == "img boundary annotation"
    widget.touching_button.click()
    wait_for_job(widget)
    assert np.all(np.asarray(annotation.data)[cells > 0] == INTERIOR)  # not cut apart again

    widget.cells_combo.setCurrentText("img other")
    viewer.layers.remove("img other")  # a chosen layer deleted: the panel may choose again
    viewer.add_points(np.zeros((0, 2)), name="more notes")
    assert widget.cells_combo.currentText() == "img cells"


def test_cells_sent_from_segment_are_saved_and_kept_by_create_open(
    make_napari_viewer, tmp_path, wait_for_job
):
    viewer, widget = _panel(make_napari_viewer)
    image = viewer.add_image(np.full((16, 20), 5, np.uint8), name="scan", metadata={"microscope": "B"})
    sent = viewer.add_labels(_two_cells(), name="scan segmented cells")
    widget.image_combo.set_layer(image)  # what Segment's "Send to Annotate" does
    widget.cells_combo.set_layer(sent)
    widget.dataset_edit.setText(str(tmp_path / "ds"))
    assert widget.save_what_combo.currentText() == "boundary annotation (3 classes)"
    widget.save_button.click()  # no annotation painted: the sent cells are saved
    assert wait_for_job(widget).error is None
    assert "saved 'scan'" in widget.message.text() and "scan segmented cells" in widget.message.text()
    dataset = CellDataset.open(tmp_path / "ds")
    assert dataset["scan"].label_kind == "masks"
    np.testing.assert_array_equal(dataset.load_instances("scan"), sent.data)

    widget.open_button.click()  # the saved cells open, the sent ones stay chosen
    wait_for_job(widget)
    assert widget.cells_combo.layer() == sent
    assert np.asarray(viewer.layers["scan boundary annotation"].data).any()
    viewer.layers.remove("scan boundary annotation")
    viewer.layers.remove("scan cells")
    widget.dataset_edit.setText("")
    widget.open_button.click()  # no dataset: empty layers added, the sent cells still chosen
    assert widget.cells_combo.layer() == sent
    assert not np.asarray(viewer.layers["scan cells"].data).any()


def test_an_image_saved_under_the_earlier_id_rule_is_found_again(make_napari_viewer, tmp_path, wait_for_job):
    from napari_cellseg.app.annotation import save_annotation

    root, image = tmp_path / "ds", np.full((16, 20), 9, np.uint8)
    save_annotation(root, "Patient_M_ller_1", image, _two_cells(), "C", annotation=False)  # the old rule's id
    viewer, widget = _panel(make_napari_viewer)
    same = viewer.add_image(image, name="Patient Müller 1", metadata={"microscope": "C"})
    other = viewer.add_image(image + 1, name="Patient Möller 1", metadata={"microscope": "C"})
    widget.image_combo.set_layer(same)
    widget.dataset_edit.setText(str(root))  # the folder chosen after the image
    assert widget.id_edit.text() == "Patient_M_ller_1"
    widget.open_button.click()
    wait_for_job(widget)
    assert np.array_equal(viewer.layers["Patient Müller 1 cells"].data, _two_cells())  # its saved cells
    assert widget.cells_combo.currentText() == "Patient Müller 1 cells"
    widget.image_combo.set_layer(other)  # the old id's pixels are not this image's: a new id
    assert widget.id_edit.text().startswith("Patient_Moller_1-")


def test_opening_saved_cells_chooses_them_over_a_guessed_cells_layer(
    make_napari_viewer, tmp_path, wait_for_job
):
    from napari_cellseg.app.annotation import save_annotation

    root, image = tmp_path / "ds", np.full((16, 20), 9, np.uint8)
    save_annotation(root, "A", image, _two_cells(), "C", annotation=False)
    viewer, widget = _panel(make_napari_viewer)
    layer = viewer.add_image(image, name="A", metadata={"microscope": "C"})
    segmented = np.zeros((16, 20), np.uint16)
    segmented[3:12, 3:15] = 7
    viewer.add_labels(segmented, name="A segmented cells")  # the panel guesses it for Cells
    widget.image_combo.set_layer(layer)
    widget.dataset_edit.setText(str(root))
    widget.open_button.click()
    wait_for_job(widget)
    assert widget.cells_combo.currentText() == "A cells"
