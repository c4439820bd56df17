"""The Annotate dock widget in a real napari viewer, on the package's sample data."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellseg.classes import BOUNDARY, CLASS_COLORS, INTERIOR
from napari_cellseg.data.dataset import CellDataset
from napari_cellseg.data.targets import instances_to_targets, targets_to_instances
from napari_cellseg.sample_data import list_samples

SAMPLE = "c_histology_1"


def _open(make_napari_viewer, sample: str | None = SAMPLE):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-cellseg", sample) if sample else []
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotate")
    return viewer, widget, layers


def _errors_since(before: int) -> list[str]:
    from napari.utils.notifications import notification_manager

    return [str(n.message) for n in notification_manager.records[before:]]


def _n_notifications() -> int:
    from napari.utils.notifications import notification_manager

    return len(notification_manager.records)


def test_paint_boundary_save_and_reload(make_napari_viewer, tmp_path, wait_for_job):
    viewer, widget, (image, _) = _open(make_napari_viewer)
    sample = list_samples()[SAMPLE]
    assert widget.microscope_combo.currentText() == "C"  # the sample's tag
    assert widget.id_edit.text() == sample.id
    root = tmp_path / "my-dataset"
    widget.dataset_edit.setText(str(root))
    image.rotate, image.units = 20, ("um", "um")  # the labels are drawn over the image as it lies
    widget.open_button.click()  # no dataset yet: empty layers, no job
    annotation = viewer.layers[f"{image.name} boundary annotation"]
    assert f"{image.name} cells" in viewer.layers
    for layer in (annotation, viewer.layers[f"{image.name} cells"]):
        np.testing.assert_allclose(layer.data_to_world((30.0, 40.0)), image.data_to_world((30.0, 40.0)))
        assert str(layer.units[0]) == "micrometer"
    assert annotation.data.shape == (256, 320) and not annotation.data.any()
    assert np.allclose(annotation.colormap.map(BOUNDARY), CLASS_COLORS[BOUNDARY])
    assert np.allclose(annotation.colormap.map(INTERIOR), CLASS_COLORS[INTERIOR])

    widget.paint_boundary_button.click()
    assert viewer.layers.selection.active is annotation or viewer.layers.selection.active == annotation
    assert (annotation.mode, annotation.selected_label, annotation.brush_size) == ("paint", BOUNDARY, 2)
    annotation.paint((40, 50), INTERIOR)  # as a brush stroke does (one undo step each)
    for x in range(40, 80, 2):
        annotation.paint((60, x), annotation.selected_label)
    painted = np.array(annotation.data)
    assert (painted == BOUNDARY).sum() > 40 and (painted == INTERIOR).any()
    annotation.paint((100, 100), BOUNDARY)
    annotation.undo()  # napari's undo works as usual on the layer
    np.testing.assert_array_equal(annotation.data, painted)

    widget.save_button.click()
    assert wait_for_job(widget).error is None
    dataset = CellDataset.open(root)
    record = dataset[sample.id]
    assert (record.microscope, record.label_kind) == ("C", "targets")
    np.testing.assert_array_equal(dataset.load_target(sample.id), painted)
    assert "saved" in widget.message.text()

    for layer in (annotation, viewer.layers[f"{image.name} cells"]):
        layer.name = f"old {layer.name}"  # out of the way (cheaper than removing)
    widget.open_button.click()  # reopens the saved annotation from the dataset
    wait_for_job(widget)
    reopened = viewer.layers[f"{image.name} boundary annotation"]
    assert reopened is not annotation
    np.testing.assert_array_equal(reopened.data, painted)


def test_convert_expert_mask_round_trip_keeps_undo(make_napari_viewer, wait_for_job):
    viewer, widget, (image, mask) = _open(make_napari_viewer)
    assert widget.cells_combo.currentText() == mask.name  # the image's own labels, picked for you
    widget.to_annotation_button.click()
    wait_for_job(widget)
    annotation = viewer.layers[f"{image.name} boundary annotation"]
    expected = instances_to_targets(mask.data)
    np.testing.assert_array_equal(annotation.data, expected)
    assert annotation.metadata["cellseg_kind"] == "annotation"
    assert "97 cells" in widget.message.text()

    data_object = annotation.data
    annotation.data_setitem((np.array([5]), np.array([5])), BOUNDARY)  # a correction
    corrected = np.array(annotation.data)
    widget.to_annotation_button.click()  # converting again edits the layer in place...
    wait_for_job(widget)
    assert viewer.layers[annotation.name] is annotation or viewer.layers[annotation.name] == annotation
    assert annotation.data is data_object
    np.testing.assert_array_equal(annotation.data, expected)
    annotation.undo()  # ...as one undoable step
    np.testing.assert_array_equal(annotation.data, corrected)

    widget.to_cells_button.click()
    wait_for_job(widget)
    cells = viewer.layers[f"{image.name} cells"]
    np.testing.assert_array_equal(cells.data, targets_to_instances(corrected, keep_orphans=True))
    assert widget.cells_combo.currentText() == cells.name
    np.testing.assert_array_equal(mask.data, viewer.layers[mask.name].data)  # source untouched


def test_add_boundary_between_touching_cells(make_napari_viewer, wait_for_job):
    viewer, widget, _ = _open(make_napari_viewer, sample=None)
    viewer.add_image(np.zeros((12, 30), np.uint8), name="tiny", metadata={"microscope": "A"})
    cells = np.zeros((12, 30), np.uint16)
    cells[2:10, 2:15], cells[2:10, 15:25] = 1, 2
    viewer.add_labels(cells, name="tiny cells")
    widget.image_combo.setCurrentText("tiny")
    widget.open_button.click()
    annotation = viewer.layers["tiny boundary annotation"]
    assert widget.cells_combo.currentText() == "tiny cells"
    annotation.data_setitem(np.nonzero(cells), INTERIOR)  # interiors painted as one blob
    before = np.array(annotation.data)
    widget.touching_button.click()
    wait_for_job(widget)
    changed = np.argwhere(annotation.data != before)
    assert set(map(tuple, changed)) == {(y, x) for y in range(2, 10) for x in (14, 15)}
    assert np.all(annotation.data[2:10, 14:16] == BOUNDARY)
    assert "16 pixels became boundary between 1 touching cell pairs" in widget.message.text()
    annotation.undo()
    np.testing.assert_array_equal(annotation.data, before)


def test_tag_and_refuse_to_overwrite(make_napari_viewer, tmp_path, wait_for_job):
    viewer, widget, _ = _open(make_napari_viewer, sample=None)
    image = viewer.add_image(np.full((16, 16), 7, np.uint8), name="scan 1")
    widget.image_combo.setCurrentText("scan 1")
    assert widget.id_edit.text() == "scan_1"
    widget.open_button.click()
    annotation = viewer.layers["scan 1 boundary annotation"]
    annotation.data_setitem((np.array([3, 4]), np.array([3, 3])), INTERIOR)
    widget.dataset_edit.setText(str(tmp_path / "ds"))

    before = _n_notifications()
    widget.save_button.click()  # untagged: refused with a clear message
    wait_for_job(widget)
    assert any("tag the image with its microscope" in m for m in _errors_since(before))

    widget.microscope_combo.setCurrentText("B")
    assert image.metadata["microscope"] == "B"
    widget.save_button.click()
    assert wait_for_job(widget).error is None
    saved = (tmp_path / "ds" / "targets" / "scan_1.tif").read_bytes()

    annotation.data_setitem((np.array([8]), np.array([8])), BOUNDARY)
    before = _n_notifications()
    widget.save_button.click()  # same id: refused before any job starts
    assert not widget.busy
    assert any("already in" in m and "tick" in m for m in _errors_since(before))
    assert (tmp_path / "ds" / "targets" / "scan_1.tif").read_bytes() == saved

    widget.overwrite_check.setChecked(True)
    widget.save_button.click()
    assert wait_for_job(widget).error is None
    assert CellDataset.open(tmp_path / "ds").load_target("scan_1")[8, 8] == BOUNDARY


@pytest.mark.parametrize("what", ["cells (instances)"])
def test_save_cells_layer_as_masks(make_napari_viewer, tmp_path, wait_for_job, what):
    _, widget, (image, mask) = _open(make_napari_viewer, "a_fluorescence_3")
    widget.cells_combo.setCurrentText(mask.name)
    widget.save_what_combo.setCurrentText(what)
    widget.dataset_edit.setText(str(tmp_path / "ds"))
    widget.id_edit.setText("corrected-1")
    widget.save_button.click()
    assert wait_for_job(widget).error is None
    dataset = CellDataset.open(tmp_path / "ds")
    assert dataset["corrected-1"].label_kind == "masks" and dataset["corrected-1"].microscope == "A"
    np.testing.assert_array_equal(dataset.load_instances("corrected-1"), mask.data)
    np.testing.assert_array_equal(dataset.load_image("corrected-1"), image.data)


def test_switching_image_never_keeps_the_other_images_labels(make_napari_viewer, tmp_path, wait_for_job):
    viewer = make_napari_viewer()
    first, _ = viewer.open_sample("napari-cellseg", "c_histology_1")
    second, second_mask = viewer.open_sample("napari-cellseg", "c_histology_2")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotate")
    widget.image_combo.setCurrentText(first.name)
    widget.dataset_edit.setText(str(tmp_path / "ds"))
    widget.open_button.click()
    assert widget.annotation_combo.currentText() == f"{first.name} boundary annotation"
    widget.image_combo.setCurrentText(second.name)
    # the first image's annotation is let go; the cells are the second image's own expert mask
    assert widget.annotation_combo.layer() is None
    assert widget.cells_combo.currentText() == second_mask.name == "[C] expert mask [1]"
    widget.save_button.click()
    assert "choose a boundary annotation layer" in widget.message.text()
    assert not (tmp_path / "ds" / "manifest.csv").exists()


def test_a_renamed_layer_stays_chosen(make_napari_viewer):
    viewer, widget, _ = _open(make_napari_viewer)
    other = viewer.add_image(np.zeros((8, 8), np.uint8), name="scan b")
    widget.image_combo.setCurrentText("scan b")
    other.name = "scan b, final"  # not the first image: a lost choice would fall back to it
    assert widget.image_combo.currentText() == "scan b, final"


def test_another_layer_added_keeps_the_typed_id_and_the_chosen_cells(make_napari_viewer):
    viewer, widget, (image, mask) = _open(make_napari_viewer)
    viewer.add_image(np.zeros((8, 8), np.uint8), name="another image")
    viewer.layers.move(viewer.layers.index("another image"), 0)  # the sample is not the first image
    widget.image_combo.setCurrentText(image.name)
    widget.id_edit.setText("patient12_slide7")
    widget.cells_combo.setCurrentText(mask.name)
    viewer.add_image(np.zeros((8, 8), np.uint8), name="probabilities of something")  # e.g. Segment's
    assert widget.id_edit.text() == "patient12_slide7" and widget.cells_combo.currentText() == mask.name


def test_a_hand_drawn_line_gets_its_second_rim_though_a_cells_layer_is_chosen(
    make_napari_viewer, wait_for_job
):
    viewer, widget, _ = _open(make_napari_viewer, sample=None)
    viewer.add_image(np.zeros((40, 40), np.uint8), name="img", metadata={"microscope": "C"})
    merged = np.zeros((40, 40), np.uint16)
    merged[10:30, 10:30] = 1  # Segment merged two nuclei
    viewer.add_labels(merged, name="img cells")
    widget.image_combo.setCurrentText("img")
    widget.to_annotation_button.click()
    wait_for_job(widget)
    annotation = viewer.layers["img boundary annotation"]
    annotation.data_setitem((np.arange(10, 30), np.full(20, 19)), BOUNDARY)  # the doctor parts them
    widget.touching_button.click()
    wait_for_job(widget)
    rows = np.asarray(annotation.data)[11:29, 17:22] == BOUNDARY
    assert (rows.sum(axis=1) >= 2).all()  # every row of the line is two pixels wide


def test_review_error_layers_and_other_images_labels_are_never_taken_as_cells(make_napari_viewer):
    viewer, widget, _ = _open(make_napari_viewer, sample=None)
    for name in ("A", "B"):
        viewer.add_image(np.zeros((20, 20), np.uint8), name=name)
    viewer.add_labels(np.ones((20, 20), np.uint16), name="A expert")  # loaded from a file: no owner
    viewer.add_labels(np.ones((20, 20), np.uint16), name="review: false positives",
                      metadata={"cellseg_kind": "review"})  # fmt: skip
    widget.image_combo.setCurrentText("A")
    widget.image_combo.setCurrentText("B")
    assert widget.cells_combo.layer() is None


def test_cells_too_small_to_keep_are_reported(make_napari_viewer, wait_for_job):
    viewer, widget, _ = _open(make_napari_viewer, sample=None)
    viewer.add_image(np.zeros((20, 20), np.uint8), name="img")
    cells = np.zeros((20, 20), np.uint16)
    cells[2:12, 2:12] = 1
    cells[15, 5], cells[15, 6] = 2, 3  # one-pixel fragments, touching
    viewer.add_labels(cells, name="img cells")
    widget.image_combo.setCurrentText("img")
    widget.to_annotation_button.click()
    wait_for_job(widget)
    assert "too small to keep" in widget.message.text()


def test_a_stack_is_refused_at_once_and_a_pyramid_saves_its_full_image(
    make_napari_viewer, tmp_path, wait_for_job
):
    viewer = make_napari_viewer()
    stack = viewer.add_image(np.zeros((3, 20, 24), np.uint8), name="z")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotate")
    widget.image_combo.set_layer(stack)
    widget.open_button.click()
    assert "is a stack of shape (3, 20, 24): Annotate works on one 2D image" in widget.message.text()
    assert "z boundary annotation" not in viewer.layers  # no 2D layers shown over every plane

    full = np.random.default_rng(0).integers(0, 255, (64, 80), dtype=np.uint8)
    pyramid = viewer.add_image([full, full[::2, ::2], full[::4, ::4]], multiscale=True, name="pyr")
    widget.image_combo.set_layer(pyramid)
    widget.open_button.click()
    cells = viewer.layers["pyr cells"]
    assert cells.data.shape == (64, 80)
    cells.data = np.pad(np.ones((10, 10), np.uint16), ((5, 49), (5, 65)))
    widget.cells_combo.set_layer(cells)
    widget.save_what_combo.setCurrentText("cells (instances)")
    widget.dataset_edit.setText(str(tmp_path / "ds"))
    widget.id_edit.setText("pyr")
    widget.microscope_combo.setCurrentText("C")
    widget.save_button.click()
    assert wait_for_job(widget).error is None
    np.testing.assert_array_equal(CellDataset.open(tmp_path / "ds").load_image("pyr"), full)


def test_segments_cells_are_chosen_though_its_probability_maps_are_image_layers(make_napari_viewer):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((20, 20), np.uint8), name="img")
    viewer.add_image(np.zeros((20, 20), np.float32), name="img boundary probability",
                     metadata={"cellseg_kind": "probability"})  # fmt: skip
    viewer.add_labels(np.zeros((20, 20), np.uint16), name="img segmented cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotate")
    widget.image_combo.set_layer(image)
    assert widget.cells_combo.currentText() == "img segmented cells"


def test_create_layers_keeps_the_proposed_expert_mask_as_cells(make_napari_viewer, wait_for_job):
    # the box showed the sample's expert mask; the click swapped in the new empty cells layer unsaid
    viewer, widget, (image, mask) = _open(make_napari_viewer)
    assert widget.cells_combo.currentText() == mask.name
    widget.open_button.click()
    wait_for_job(widget)
    assert (
        widget.cells_combo.currentText() == mask.name
        and f"Cells stays {mask.name!r}" in widget.message.text()
    )
    assert f"{image.name} cells" in viewer.layers  # the empty layer to paint in is there too


def test_saving_an_untagged_image_says_it_has_no_tag(tmp_path):
    from napari_cellseg.app.annotation import save_annotation

    with pytest.raises(ValueError, match=r"before saving: it has no tag yet$"):
        save_annotation(
            tmp_path, "x", np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint16), None, annotation=False
        )
