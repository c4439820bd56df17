"""The plugin's writers as napari's save calls them: what it writes, and what it says when it cannot."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module", autouse=True)
def _plugins():
    import npe2

    npe2.PluginManager.instance().discover()


@pytest.mark.parametrize("suffix", [".geojson", ".zip"])
def test_a_layer_the_writer_refuses_says_why_through_napari(tmp_path, suffix):
    # napari's save reads a writer's ValueError as 'no writer for this file' and drops its message
    from napari.layers import Labels

    layer = Labels(np.zeros((2, 2, 12, 16), np.uint8), name="time lapse")  # (T, Z, H, W): no outlines
    with pytest.raises(Exception, match="time lapse") as raised:
        layer.save(str(tmp_path / f"cells{suffix}"), plugin="napari-cellseg")
    assert not isinstance(raised.value, ValueError)
    assert str(tmp_path / f"cells{suffix}") in str(raised.value)
    assert "(H, W) or (Z, H, W)" in str(raised.value)
    assert list(tmp_path.iterdir()) == []  # nothing half-written
