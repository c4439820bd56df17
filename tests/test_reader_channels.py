"""napari's TIFF reader on multichannel files: a layer per channel where the file names its channels."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_cellseg.io import write_tiff_layer
from napari_cellseg.napari_io import napari_get_reader


def _read(path):
    return napari_get_reader(str(path))(str(path))


def test_a_tiff_whose_axes_name_channels_opens_as_a_layer_per_channel(tmp_path):
    rng = np.random.default_rng(0)
    cyx = rng.integers(0, 4000, (2, 32, 24), dtype=np.uint16)
    tifffile.imwrite(
        tmp_path / "dapi-gfp.ome.tif", cyx, metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}}
    )
    ((data, attributes, kind),) = _read(tmp_path / "dapi-gfp.ome.tif")
    assert kind == "image" and attributes["channel_axis"] == 0  # not two z-planes of one layer
    assert attributes["name"] == ["dapi-gfp.ome DAPI", "dapi-gfp.ome GFP"]
    np.testing.assert_array_equal(data, cyx)
    # an ImageJ hyperstack: channels on axis 1, each channel a stack over time; no names stored
    tcyx = rng.integers(0, 4000, (3, 2, 32, 24), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "movie.tif", tcyx, imagej=True, metadata={"axes": "TCYX"})
    ((data, attributes, _),) = _read(tmp_path / "movie.tif")
    assert attributes["channel_axis"] == 1 and attributes["name"] == ["movie ch0", "movie ch1"]
    assert data.shape == (3, 2, 32, 24)


def test_stacks_rgb_and_the_plugins_own_files_stay_one_layer(tmp_path):
    zyx = np.zeros((5, 16, 16), np.uint16)
    tifffile.imwrite(tmp_path / "z.ome.tif", zyx, metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / "plain.tif", zyx)  # no axes: a stack as before
    tifffile.imwrite(tmp_path / "one.ome.tif", zyx[:1], metadata={"axes": "CYX"})  # one channel
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((16, 16, 3), np.uint8), photometric="rgb")
    own = write_tiff_layer(tmp_path / "own.tif", zyx, "image", {"name": "own"})
    for name in ("z.ome.tif", "plain.tif", "one.ome.tif", "rgb.tif", own.name):
        ((_, attributes, _),) = _read(tmp_path / name)
        assert "channel_axis" not in attributes and isinstance(attributes["name"], str), name
