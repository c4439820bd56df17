"""Segment panel: a model that cannot resample the image says so in the status line.

(That no warning is raised is checked on the core, in tests/test_segment_session.py: the
workers' threads swap the warnings module's global hooks, so a test here cannot catch it.)
"""

from __future__ import annotations

import json

from napari_cellseg.app import current_model
from napari_cellseg.sample_data import load_sample


def test_a_model_without_object_diameter_is_noted_in_the_status_line(
    make_napari_viewer, tiny_model_dir, wait_for_job
):
    # A hand-edited config.json: a default_diameter (estimate) but no object_diameter to resample to.
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config.update(object_diameter=None, default_diameter=0.0)
    (tiny_model_dir / "config.json").write_text(json.dumps(config))
    current_model.set_current_model(tiny_model_dir)
    viewer = make_napari_viewer()
    image, _mask, _ = load_sample("c_histology_1")
    layer = viewer.add_image(image[:96, :96], name="crop", rgb=True, metadata={"microscope": "C"})
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    widget.segment(layer)
    task = wait_for_job(widget)
    assert task is not None and task.error is None, task.error if task else "no job started"
    message = widget.message.text()
    assert "cells in 'crop'" in message
    assert "Note: the model's config.json has no object_diameter" in message
    assert "(its default_diameter): it is segmented at its own scale." in message
