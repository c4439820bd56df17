"""Microscope tags beyond A, B, C in the panels: Annotate, the Dataset panel's split and its import box.

The boxes offer A, B, C and the tags the chosen dataset already uses, and take a tag typed
by the user once it is a valid tag (a bad one is refused, saying why).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
from qtpy.QtCore import Qt

from napari_cellseg.classes import INTERIOR
from napari_cellseg.data.dataset import CellDataset


def _items(combo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def _type(qtbot, combo, text: str) -> None:
    """Type ``text`` over the box's text and press Enter, as a user does."""
    combo.lineEdit().selectAll()
    qtbot.keyClick(combo.lineEdit(), Qt.Key.Key_Delete)
    qtbot.keyClicks(combo.lineEdit(), text)
    qtbot.keyClick(combo.lineEdit(), Qt.Key.Key_Return)


def _notifications_since(before: int) -> list[str]:
    from napari.utils.notifications import notification_manager

    return [str(n.message) for n in notification_manager.records[before:]]


def _n_notifications() -> int:
    from napari.utils.notifications import notification_manager

    return len(notification_manager.records)


def _retag(root, tags: dict[str, str]):
    manifest = root / "manifest.csv"
    lines = manifest.read_text().splitlines()
    rows = [lines[0]]
    for line in lines[1:]:
        image_id, tag, *rest = line.split(",")
        rows.append(",".join([image_id, tags[tag], *rest]))
    manifest.write_text("\n".join(rows) + "\n")
    return root


def test_annotate_offers_the_datasets_tags_and_saves_a_typed_one(
    make_napari_viewer, qtbot, tiny_dataset, wait_for_job
):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotate")
    image = viewer.add_image(np.full((16, 16), 7, np.uint8), name="scan 1", metadata={"microscope": "E"})
    combo = widget.microscope_combo
    assert combo.currentText() == "E"  # an image tagged E (opened from a D/E dataset) shows its tag
    root = _retag(tiny_dataset, {"A": "D", "B": "D", "C": "E"})
    widget.dataset_edit.setText(str(root))
    assert _items(combo) == ["(untagged)", "A", "B", "C", "D", "E"]
    widget.open_button.click()
    wait_for_job(widget)
    viewer.layers["scan 1 boundary annotation"].data_setitem((np.array([3, 4]), np.array([3, 3])), INTERIOR)

    _type(qtbot, combo, "my scope")  # no tag: refused, saying why; the image keeps its tag
    assert "microscope tag 'my scope' is not a tag" in widget.message.text()
    assert image.metadata["microscope"] == "E" and "my scope" not in _items(combo)
    before = _n_notifications()
    widget.save_button.click()
    assert not widget.busy and any("'my scope' is not a tag" in m for m in _notifications_since(before))
    assert "scan_1" not in CellDataset.open(root)
    combo.setCurrentIndex(combo.findText("D"))  # picked from the list: taken at once
    assert image.metadata["microscope"] == "D"

    _type(qtbot, combo, "zeiss2")
    assert image.metadata["microscope"] == "zeiss2" and _items(combo)[-1] == "zeiss2"
    widget.save_button.click()
    assert wait_for_job(widget).error is None
    assert CellDataset.open(root)["scan_1"].microscope == "zeiss2"

    combo.setCurrentText("(untagged)")  # the untagged state stays
    assert "microscope" not in image.metadata
    before = _n_notifications()
    widget.overwrite_check.setChecked(True)
    widget.save_button.click()
    wait_for_job(widget)
    assert any("before saving: it has no tag yet" in m for m in _notifications_since(before))


def test_dataset_panel_checks_and_splits_a_d_e_dataset_by_its_own_tags(
    make_napari_viewer, qtbot, tiny_dataset, wait_for_job
):
    root = _retag(tiny_dataset, {"A": "D", "B": "D", "C": "E"})
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Dataset")
    assert _items(widget.target_combo) == ["A", "B", "C"] and widget.target_combo.currentText() == "C"
    widget.dataset_edit.setText(str(root))
    assert _items(widget.target_combo) == ["A", "B", "C", "D", "E"]
    assert _items(widget.import_box.microscope_combo) == ["A", "B", "C", "D", "E"]
    widget.check_button.click()
    assert wait_for_job(widget).error is None and "no problem found" in widget.message.text()

    widget.grouping_check.setChecked(False)
    _type(qtbot, widget.target_combo, "E?")
    assert "microscope tag 'E?' is not a tag" in widget.message.text()
    widget.split_button.click()  # refused before any job: no split file
    assert not widget.busy and "'E?' is not a tag" in widget.message.text()
    assert not (root / "split.csv").exists()

    _type(qtbot, widget.target_combo, "E")
    widget.split_button.click()
    assert wait_for_job(widget).error is None, widget.message.text()
    header = [
        widget.counts_table.horizontalHeaderItem(c).text() for c in range(widget.counts_table.columnCount())
    ]
    assert header == ["subset", "D", "E", "total"]
    assert (root / "split.csv").is_file()


def test_import_box_takes_a_typed_tag_and_refuses_a_bad_one(
    make_napari_viewer, qtbot, tmp_path, wait_for_job
):
    import imageio.v3 as iio

    slides = tmp_path / "slides"
    slides.mkdir()
    iio.imwrite(slides / "field1.png", np.full((40, 50), 90, np.uint8))
    ring = [[5, 5], [17, 5], [17, 17], [5, 17], [5, 5]]
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": {}}
    (slides / "field1.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Dataset")
    box = widget.import_box
    widget.dataset_edit.setText(str(tmp_path / "ds"))
    box.images_edit.setText(str(slides))
    _type(qtbot, box.microscope_combo, "Zeiss 2")
    box.import_button.click()  # refused before any image is read
    assert not widget.busy and "microscope tag 'Zeiss 2' is not a tag" in widget.message.text()
    assert not (tmp_path / "ds").exists()

    _type(qtbot, box.microscope_combo, "zeiss2")
    box.import_button.click()
    assert wait_for_job(widget).error is None
    assert CellDataset.open(tmp_path / "ds")["field1"].microscope == "zeiss2"
    # the dataset's new tag is offered for the split
    assert _items(widget.target_combo) == ["A", "B", "C", "zeiss2"]
    shutil.rmtree(slides)
