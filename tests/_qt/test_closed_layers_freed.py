"""A long session: layers closed in napari are freed, with the panels docked that worked on them."""

from __future__ import annotations

import gc
import weakref

from napari_cellseg.app import current_model
from napari_cellseg.sample_data import load_sample


def test_segmented_converted_and_reviewed_layers_are_freed_once_closed(
    make_napari_viewer, tiny_model_dir, wait_for_job, qtbot
):
    # Annotate kept the last image (and the last labels each box showed) as layers: a closed
    # image stayed in memory with its pixels until the next image was chosen.
    current_model.set_current_model(tiny_model_dir)
    viewer = make_napari_viewer()
    _, segment = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    _, annotate = viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotate")
    _, review = viewer.window.add_plugin_dock_widget("napari-cellseg", "Review")
    image, mask, _ = load_sample("c_histology_1")
    layer = viewer.add_image(image, name="sample", rgb=True)
    expert = viewer.add_labels(mask, name="expert mask")
    segment.segment(layer)
    assert wait_for_job(segment, timeout=60000).error is None
    segment.send_to_annotate()
    annotate.convert_to_annotation()
    assert wait_for_job(annotate).error is None
    review.gt_combo.set_layer(expert)
    review.pred_combo.set_layer(segment.labels_layer)
    review.compare()
    assert wait_for_job(review).error is None
    assert len(viewer.layers) >= 6  # image, mask, probability, cells, annotation, review layers
    refs = [weakref.ref(x) for x in viewer.layers]
    del layer, expert
    viewer.layers.clear()
    qtbot.wait(50)  # the jobs' workers let go of their arguments right after they end
    gc.collect()
    alive = [ref().name for ref in refs if ref() is not None]
    assert alive == []
