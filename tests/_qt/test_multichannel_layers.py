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
