"""End to end through the plugin manifest: sample -> Segment panel -> button -> layers; the layer menu."""

from __future__ import annotations

import numpy as np

from napari_cellseg.app import current_model

COMMAND = "napari-cellseg.segment_selected_layer"


def test_sample_segment_button_layers(make_napari_viewer, tiny_model_dir, wait_for_job):
    current_model.set_current_model(tiny_model_dir)
    viewer = make_napari_viewer()
    image, mask = viewer.open_sample("napari-cellseg", "c_histology_1")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    assert widget.image_combo.currentText() == image.name
    widget.segment_button.click()
    task = wait_for_job(widget, timeout=60000)
    assert task.error is None
    names = [layer.name for layer in viewer.layers]
    assert names == [
        image.name,
        mask.name,
        f"{image.name} boundary probability",
        f"{image.name} segmented cells",
    ]
    cells = viewer.layers[f"{image.name} segmented cells"]
    assert type(cells).__name__ == "Labels" and cells.data.shape == mask.data.shape
    assert cells.metadata["microscope"] == "C" and cells.metadata["model"] == str(tiny_model_dir.resolve())
    assert type(viewer.layers[f"{image.name} boundary probability"]).__name__ == "Image"
    assert f"cells in {image.name!r}" in widget.message.text()


def test_layer_menu_command_segments_the_selected_layer(make_napari_viewer, tiny_model_dir, qtbot):
    from napari._app_model import get_app_model

    current_model.set_current_model(tiny_model_dir)
    viewer = make_napari_viewer()
    image, _ = viewer.open_sample("napari-cellseg", "c_histology_2")
    viewer.layers.selection.active = image
    app = get_app_model()
    menu = [
        item.command.id for item in app.menus.get_menu("napari/layers/segment") if hasattr(item, "command")
    ]
    assert COMMAND in menu
    app.commands.execute_command(COMMAND).result()
    qtbot.waitUntil(lambda: f"{image.name} segmented cells" in viewer.layers, timeout=60000)
    cells = viewer.layers[f"{image.name} segmented cells"]
    assert cells.data.shape == image.data.shape[:2] and np.asarray(cells.data).max() >= 0
    assert any(type(w).__name__ == "SegmentWidget" for w in viewer.window.dock_widgets.values())


def test_qupath_and_fiji_round_trip_through_the_viewer(make_napari_viewer, tmp_path, wait_for_job):
    """The expert mask saved as QuPath and Fiji outlines, reopened by drag and drop, reviewed: identical."""
    import imageio.v3 as iio

    viewer = make_napari_viewer()
    image, mask = viewer.open_sample("napari-cellseg", "c_histology_1")
    iio.imwrite(tmp_path / "slide.png", np.asarray(image.data))  # the image the outlines belong to
    viewer.layers.selection = {mask}
    assert viewer.layers.save(str(tmp_path / "slide.geojson"), selected=True) == [
        str(tmp_path / "slide.geojson")
    ]
    assert viewer.layers.save(str(tmp_path / "slide_rois.zip"), selected=True) == [
        str(tmp_path / "slide_rois.zip")
    ]
    for name in ("slide.geojson", "slide_rois.zip"):
        (opened,) = viewer.open(str(tmp_path / name), plugin=None)  # as a file dropped on the canvas
        assert type(opened).__name__ == "Labels" and opened.data.shape == mask.data.shape
    _, review = viewer.window.add_plugin_dock_widget("napari-cellseg", "Review")
    review.gt_combo.setCurrentText(mask.name)
    for name in ("slide", "slide_rois"):
        review.pred_combo.setCurrentText(name)
        review.compare_button.click()
        assert wait_for_job(review).error is None
        table = review.image_table
        rows = {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}
        assert rows["AP@0.5"] == "1.000" and rows["DSB score"] == "1.000", name
