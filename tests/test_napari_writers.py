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


@pytest.mark.parametrize("suffix", [".geojson", ".zip"])
@pytest.mark.parametrize("cells", [True, False], ids=["cells", "no cell"])
def test_outlines_saved_from_a_layer_reopen_as_that_layer_with_no_image_beside(tmp_path, suffix, cells):
    # without the image beside them the labels were cropped to the last cell and lost their
    # scale, and a layer of no cell did not reopen at all
    from napari.components import ViewerModel
    from napari.layers import Labels

    labels = np.zeros((3, 20, 30), np.uint16)
    if cells:
        labels[0, 2:6, 3:8], labels[1, 4:9, 5:12] = 4, 9
    layer = Labels(labels, name="cells", scale=(2.0, 0.5, 0.25), translate=(0.0, 10.0, 20.0))
    (written,) = layer.save(str(tmp_path / f"cells{suffix}"), plugin="napari-cellseg")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"cells{suffix}"]

    (back,) = ViewerModel().open(written, plugin="napari-cellseg")
    np.testing.assert_array_equal(back.data, labels)
    assert back.scale.tolist() == [2.0, 0.5, 0.25] and back.translate.tolist() == [0.0, 10.0, 20.0]
