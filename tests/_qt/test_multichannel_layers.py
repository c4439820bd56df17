"""The panels on multichannel and n-dimensional images, as fluorescence users open them."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_cellseg.sample_data import load_sample

NUCLEI = load_sample("a_fluorescence_1")[0]  # fluorescence nuclei, stored as grey RGB
NUCLEI = NUCLEI[..., 0] if NUCLEI.ndim == 3 else NUCLEI


def test_an_ome_tiff_of_two_channels_opens_a_layer_each_and_the_nuclei_are_segmented(
    make_napari_viewer, tiny_model_dir, wait_for_job, tmp_path
):
    from napari_cellseg.app import current_model

    current_model.set_current_model(tiny_model_dir)
    membrane = np.roll(NUCLEI, 7, axis=1)
    path = tmp_path / "cells.ome.tif"
    tifffile.imwrite(
        path, np.stack([membrane, NUCLEI]), metadata={"axes": "CYX", "Channel": {"Name": ["GFP", "DAPI"]}}
    )
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-cellseg")
    assert [layer.name for layer in layers] == ["cells.ome GFP", "cells.ome DAPI"]
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    widget.segment(viewer.layers["cells.ome DAPI"])
    wait_for_job(widget, timeout=60000)
    cells = viewer.layers["cells.ome DAPI segmented cells"]
    assert cells.data.shape == NUCLEI.shape  # one plane: the nuclei, not both channels as planes
    assert "planes" not in widget.message.text()


def _segment_panel(viewer, tiny_model_dir):
    from napari_cellseg.app import current_model

    current_model.set_current_model(tiny_model_dir)
    return viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")[1]


def test_channels_last_get_the_console_line_not_split_stack(make_napari_viewer, tiny_model_dir, wait_for_job):
    # Split Stack cuts along the first axis: 256 layers of one row for (H, W, 2)
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.stack([NUCLEI, NUCLEI], axis=-1), name="two")
    _, annotate = viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotate")
    annotate.image_combo.set_layer(layer)
    annotate.open_button.click()
    text = annotate.message.text()
    line = "viewer.add_image(viewer.layers['two'].data, channel_axis=-1)"
    assert "'two' has 2 channel(s) on its last axis" in text and line in text and "Split Stack" not in text
    segment = _segment_panel(viewer, tiny_model_dir)
    segment.segment(layer)
    wait_for_job(segment, timeout=60000)
    assert line in segment.message.text() and "two segmented cells" not in viewer.layers


def test_a_four_dimensional_layer_is_told_what_split_stack_makes(make_napari_viewer, tiny_model_dir):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.stack([np.stack([NUCLEI, NUCLEI])] * 3), name="movie")  # (T, C, H, W)
    segment = _segment_panel(viewer, tiny_model_dir)
    segment.segment(layer)
    text = segment.message.text()
    assert (
        "'movie'" in text
        and f"Split Stack makes 3 layers of shape (2, {NUCLEI.shape[0]}, {NUCLEI.shape[1]})" in text
    )
