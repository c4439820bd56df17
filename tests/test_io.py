from pathlib import Path

import numpy as np
import pytest

from napari_cellseg.io import (
    ImageReadError,
    collapse_grey_rgb,
    read_image,
    read_tiff_layer,
    write_tiff_layer,
)
from napari_cellseg.napari_io import napari_get_reader


def test_labels_round_trip_keeps_type_dtype_scale_metadata(tmp_path):
    labels = np.zeros((20, 30), dtype=np.uint16)
    labels[2:8, 3:9] = 7
    attrs = {"name": "cells", "scale": (0.5, 0.25), "translate": (1.0, 2.0), "metadata": {"microscope": "C"}}
    path = write_tiff_layer(tmp_path / "cells.tif", labels, "labels", attrs)
    data, read_attrs, layer_type = read_tiff_layer(path)
    assert layer_type == "labels"
    assert data.dtype == np.uint16
    np.testing.assert_array_equal(data, labels)
    assert read_attrs["scale"] == (0.5, 0.25)
    assert read_attrs["translate"] == (1.0, 2.0)
    assert read_attrs["metadata"] == {"microscope": "C"}
    assert read_attrs["name"] == "cells"


def test_rgb_image_round_trip(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (16, 12, 3), dtype=np.uint8)
    path = write_tiff_layer(tmp_path / "im.tif", image, "image", {"name": "im"})
    data, attrs, layer_type = read_tiff_layer(path)
    assert layer_type == "image" and attrs["rgb"] is True
    np.testing.assert_array_equal(data, image)


def test_reader_declines_non_tiff_and_reads_tiff(tmp_path):
    assert napari_get_reader(str(tmp_path / "x.png")) is None
    assert napari_get_reader([str(tmp_path / "a.tif"), str(tmp_path / "b.png")]) is None
    path = write_tiff_layer(tmp_path / "a.tif", np.ones((4, 4), np.uint8), "image")
    reader = napari_get_reader(str(path))
    layers = reader(str(path))
    assert len(layers) == 1 and layers[0][2] == "image"


def test_lzw_and_jpeg_compressed_tiffs_are_read(tmp_path):
    # Photoshop, GIMP, scanners and QuPath/Bio-Formats exports write LZW; tifffile decodes it
    # (and JPEG) only through imagecodecs, a dependency since these failed as "requires imagecodecs"
    pytest.importorskip("imagecodecs", reason="imagecodecs (a dependency) is not installed here")
    import tifffile
    from PIL import Image

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 60000, (32, 24), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "lzw.tif", grey, compression="lzw")
    assert tifffile.TiffFile(tmp_path / "lzw.tif").pages[0].compression == 5  # LZW
    ((data, _attrs, layer_type),) = napari_get_reader(str(tmp_path / "lzw.tif"))(str(tmp_path / "lzw.tif"))
    assert layer_type == "image"
    np.testing.assert_array_equal(data, grey)
    np.testing.assert_array_equal(read_image(tmp_path / "lzw.tif"), grey)
    rgb = rng.integers(0, 255, (32, 24, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "jpeg.tif", compression="jpeg")
    assert read_image(tmp_path / "jpeg.tif").shape == (32, 24, 3)


def test_imagecodecs_is_a_dependency():
    # without it the test above is skipped and every LZW/JPEG TIFF fails to read
    import re

    tomllib = pytest.importorskip("tomllib", reason="Python 3.10 has no tomllib")
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not run from a source checkout (no pyproject.toml)")
    dependencies = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    assert "imagecodecs" in {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0] for d in dependencies}


def test_a_tiff_of_several_images_is_refused_naming_them_but_pyramids_are_read(tmp_path):
    import tifffile
    from PIL import Image

    a = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)
    # two OME series (a multi-position export): the second was dropped without a word
    with tifffile.TiffWriter(tmp_path / "two.ome.tif", ome=True) as writer:
        writer.write(a, metadata={"axes": "YX"})
        writer.write(np.ascontiguousarray(a[::-1]), metadata={"axes": "YX"})
    with pytest.raises(ImageReadError, match=r"two\.ome\.tif: holds 2 images .*\(64, 48\), \(64, 48\)"):
        read_image(tmp_path / "two.ome.tif")
    with pytest.raises(ImageReadError, match=r"two\.ome\.tif: holds 2 images"):
        read_tiff_layer(tmp_path / "two.ome.tif")
    # images of one shape may be a z-stack written plane by plane: the message says how to save it
    with pytest.raises(ImageReadError, match=r"planes of one z-stack, save them as one stack"):
        read_image(tmp_path / "two.ome.tif")
    # pages of different sizes (Pillow save_all)
    pages = [Image.fromarray(a.astype(np.uint8)), Image.fromarray(a[:32, :40].astype(np.uint8))]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(
        ImageReadError, match=r"pages\.tif: holds 2 images .*\(64, 48\), \(32, 40\)"
    ) as refused:
        read_image(tmp_path / "pages.tif")
    assert "z-stack" not in str(refused.value)  # of different shapes: no stack to suggest
    # a transparency-mask page (NewSubfileType 4) is no image of its own
    tifffile.imwrite(tmp_path / "masked.tif", a)
    tifffile.imwrite(tmp_path / "masked.tif", np.ones((64, 48), bool), append=True, subfiletype=4)
    np.testing.assert_array_equal(read_image(tmp_path / "masked.tif"), a)
    # pages of one shape are one stack, as before
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=[pages[0]] * 2)
    assert read_image(tmp_path / "stack.tif").shape == (3, 64, 48)
    # reduced-resolution levels and thumbnails are not images of their own
    with tifffile.TiffWriter(tmp_path / "pyramid.ome.tif", ome=True) as writer:
        writer.write(a, subifds=1, metadata={"axes": "YX"})
        writer.write(a[::2, ::2], subfiletype=1)
    with tifffile.TiffWriter(tmp_path / "thumbnail_after.tif") as writer:
        writer.write(a)
        writer.write(a[::4, ::4], subfiletype=1)
    with tifffile.TiffWriter(tmp_path / "thumbnail_first.tif") as writer:
        writer.write(a[::4, ::4], subfiletype=1)
        writer.write(a)
    for name in ("pyramid.ome.tif", "thumbnail_after.tif", "thumbnail_first.tif"):
        np.testing.assert_array_equal(read_image(tmp_path / name), a)


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    missing = tmp_path / "nothing.tif"
    with pytest.raises(ImageReadError, match=r"nothing\.tif: no such file"):
        read_tiff_layer(missing)
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00garbage that is not a tiff")
    with pytest.raises(ImageReadError, match=r"corrupt\.tif: not a readable TIFF"):
        read_tiff_layer(corrupt)
    reader = napari_get_reader(str(corrupt))
    with pytest.raises(ImageReadError, match=r"corrupt\.tif"):
        reader(str(corrupt))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ImageReadError, match="unsupported file type"):
        read_image(text)
    fake_png = tmp_path / "fake.png"
    fake_png.write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match=r"fake\.png: not a PNG file \(its first bytes are text\)"):
        read_image(fake_png)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.jpg: empty file \(0 bytes\)"):
        read_image(empty)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(ImageReadError, match=r"truncated\.png: cannot be read"):
        read_image(truncated)


def test_planar_rgb_tiff_is_read_with_colours_last_and_a_stack_stays_a_stack(tmp_path):
    import tifffile

    pixels = np.random.default_rng(0).integers(0, 255, (3, 16, 20), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "planar.tif", pixels, photometric="rgb", planarconfig="separate")
    tifffile.imwrite(tmp_path / "stack.tif", pixels, photometric="minisblack")
    np.testing.assert_array_equal(read_image(tmp_path / "planar.tif"), np.moveaxis(pixels, 0, -1))
    np.testing.assert_array_equal(read_image(tmp_path / "stack.tif"), pixels)


def test_foreign_mask_tiff_opens_as_labels(shared_data):
    path = next((shared_data / "dsb2018-demo" / "masks").glob("*.tif"))
    data, _, layer_type = read_tiff_layer(path)
    assert layer_type == "labels" and data.dtype == np.uint16 and data.max() > 0


def test_collapse_grey_rgb():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert collapse_grey_rgb(np.stack([grey] * 3, -1)).shape == (3, 4)
    colour = np.stack([grey, grey, grey + 1], -1)
    assert collapse_grey_rgb(colour).shape == (3, 4, 3)


def test_write_is_atomic_on_failure(tmp_path, monkeypatch):
    path = write_tiff_layer(tmp_path / "keep.tif", np.ones((4, 4), np.uint16), "labels")
    import os

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_tiff_layer(path, np.zeros((4, 4), np.uint16), "labels")
    monkeypatch.undo()
    data, _, _ = read_tiff_layer(path)
    assert data.sum() == 16  # the old labels survive
    assert [p.name for p in tmp_path.iterdir()] == ["keep.tif"]  # no temp file left behind


def test_labels_layer_saves_as_qupath_geojson_through_the_manifest(tmp_path):
    """File > Save Selected Layer... with a .geojson name picks the plugin's outline writer."""
    import json

    import npe2

    from napari_cellseg.sample_data import load_sample

    _, mask, _ = load_sample("c_histology_2")
    npe2.PluginManager.instance().discover()  # napari does this at start-up
    written = npe2.write(
        str(tmp_path / "cells.geojson"),
        [(mask, {"name": "slide 7 cells"}, "labels")],
        plugin_name="napari-cellseg",
    )
    assert written == [str(tmp_path / "cells.geojson")]
    features = json.loads((tmp_path / "cells.geojson").read_text())["features"]
    assert len(features) == len(np.unique(mask)) - 1
    assert features[0]["properties"]["name"].startswith("slide 7 cells cell ")


def test_qupath_outlines_open_as_labels_sized_like_the_image_beside_them(tmp_path):
    """Drag slide.geojson into napari: a labels layer with the shape of slide.png next to it."""
    import npe2

    from napari_cellseg.inference.outlines import write_geojson
    from napari_cellseg.sample_data import load_sample

    _, mask, _ = load_sample("c_histology_2")
    padded = np.zeros((mask.shape[0] + 20, mask.shape[1] + 30), mask.dtype)
    padded[: mask.shape[0], : mask.shape[1]] = mask  # no outline reaches the image's far edges
    write_geojson(tmp_path / "slide.geojson", padded)
    npe2.PluginManager.instance().discover()
    (alone,) = npe2.read([str(tmp_path / "slide.geojson")], stack=False, plugin_name="napari-cellseg")
    assert alone[2] == "labels" and alone[0].shape[0] <= mask.shape[0]  # sized to the outlines
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "slide.png", np.zeros((*padded.shape, 3), np.uint8))
    (layer,) = npe2.read([str(tmp_path / "slide.geojson")], stack=False, plugin_name="napari-cellseg")
    data, attributes, kind = layer
    assert kind == "labels" and attributes["name"] == "slide"
    np.testing.assert_array_equal(data, padded)
    assert attributes["metadata"]["image"] == str(tmp_path / "slide.png")


def test_pngs_with_alpha_lose_it_and_a_two_channel_tiff_keeps_both(tmp_path):
    import tifffile
    from PIL import Image

    grey = (np.arange(48, dtype=np.uint8).reshape(6, 8)) * 5
    Image.fromarray(grey).convert("LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png"), grey)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).convert("RGBA").save(tmp_path / "rgba.png")
    assert read_image(tmp_path / "rgba.png").shape == (6, 8, 3)
    tifffile.imwrite(tmp_path / "two.tif", np.stack([grey, grey[::-1]], axis=-1))
    assert read_image(tmp_path / "two.tif").shape == (6, 8, 2)  # two stains: --channel chooses


def test_fiji_roi_sets_save_and_open_through_the_manifest(tmp_path):
    """A labels layer saved as .zip is a Fiji ROI set; dropped back in, it opens as labels."""
    import zipfile

    import npe2

    from napari_cellseg.outlines_io import napari_get_outlines_reader
    from napari_cellseg.sample_data import load_sample

    _, mask, _ = load_sample("c_histology_2")
    npe2.PluginManager.instance().discover()
    written = npe2.write(str(tmp_path / "slide_rois.zip"), [(mask, {"name": "cells"}, "labels")], plugin_name="napari-cellseg")  # fmt: skip
    assert written == [str(tmp_path / "slide_rois.zip")]
    assert len(zipfile.ZipFile(tmp_path / "slide_rois.zip").namelist()) == mask.max()
    padded = np.zeros((mask.shape[0] + 9, mask.shape[1] + 4), np.uint8)
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "slide.png", padded)  # the image the ROIs were drawn on
    (layer,) = npe2.read([str(tmp_path / "slide_rois.zip")], stack=False, plugin_name="napari-cellseg")
    assert layer[2] == "labels" and layer[0].shape == padded.shape
    np.testing.assert_array_equal(layer[0][: mask.shape[0], : mask.shape[1]], mask)
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("data/.zarray", "{}")
    assert napari_get_outlines_reader(str(tmp_path / "other.zip")) is None  # not every zip is a ROI set


def test_sixteen_bit_colour_pngs_keep_their_bits_and_cmyk_jpegs_their_colours(tmp_path):
    import cv2
    from PIL import Image

    grey = (np.arange(16 * 18, dtype=np.uint16).reshape(16, 18) * 200) + 3
    cv2.imwrite(str(tmp_path / "rgb16.png"), np.dstack([grey, grey // 2, grey // 3]))  # written as BGR
    rgb = read_image(tmp_path / "rgb16.png")
    assert rgb.dtype == np.uint16 and rgb.shape == (16, 18, 3)
    np.testing.assert_array_equal(rgb[..., 2], grey)
    pink = np.zeros((8, 8, 3), np.uint8)
    pink[...] = (200, 30, 60)
    Image.fromarray(pink).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    read = read_image(tmp_path / "cmyk.jpg")
    assert read.shape == (8, 8, 3) and np.abs(read.astype(int) - pink).max() <= 3


def test_a_stacks_outlines_open_with_every_plane_of_the_stack_beside_them(tmp_path):
    from napari_cellseg.inference.outlines import write_geojson, write_imagej_rois
    from napari_cellseg.outlines_io import read_outlines_layers

    stack = np.zeros((3, 12, 14), np.uint16)
    stack[0, 2:5, 2:5], stack[1, 6:9, 5:9] = 1, 2  # the last plane holds no cell
    write_tiff_layer(tmp_path / "stack.tif", stack, "labels", {"name": "stack"})  # segment's labels
    write_geojson(tmp_path / "stack.geojson", stack)
    write_imagej_rois(tmp_path / "stack_rois.zip", stack)
    for name in ("stack.geojson", "stack_rois.zip"):
        ((data, attributes, kind),) = read_outlines_layers(str(tmp_path / name))
        np.testing.assert_array_equal(data, stack)
        assert attributes["metadata"]["image"] == str(tmp_path / "stack.tif")
        assert kind == "labels"


def test_images_past_pillows_decompression_guard_are_read(tmp_path, monkeypatch):
    # Whole-slide crops pass 179 MP; the guard is lowered here so that a small file trips it.
    from PIL import Image

    from napari_cellseg.data.headers import read_header

    Image.fromarray(np.full((30, 40), 7, np.uint8)).save(tmp_path / "big.png")
    Image.fromarray(np.full((30, 40, 3), 7, np.uint8)).save(tmp_path / "big.jpg")
    for name in ("big.png", "big.jpg"):
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
        assert read_image(tmp_path / name).shape[:2] == (30, 40)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
        assert read_header(tmp_path / name).shape == (30, 40)


def test_a_layer_reopens_where_it_lay_rotated_with_units_and_its_rgb_choice(tmp_path):
    """Rotate, shear, affine, units and axis labels are stored; 3 channels kept as an axis
    (rgb=False) reopen as an axis, not as colours napari would then refuse the scale of."""
    from napari.layers import Image

    pixels = np.random.default_rng(0).integers(0, 255, (16, 12, 3), dtype=np.uint8)
    layer = Image(pixels, rgb=False, scale=(1, 0.5, 0.5), rotate=(0, 0, 30), units="um", name="three")
    path = write_tiff_layer(tmp_path / "three.tif", layer.data, "image", layer._get_state())
    data, attributes, kind = read_tiff_layer(path)
    reopened = Image(data, **attributes)
    assert kind == "image" and attributes["rgb"] is False and reopened.ndim == 3
    point = (1.0, 4.0, 5.0)
    np.testing.assert_allclose(reopened.data_to_world(point), layer.data_to_world(point))
    assert str(reopened.units[-1]) == "micrometer"
    colour = Image(pixels, rgb=True, affine=np.array([[1.0, 0.2, 3.0], [0.0, 1.0, 4.0], [0, 0, 1]]))
    data, attributes, _ = read_tiff_layer(
        write_tiff_layer(tmp_path / "c.tif", pixels, "image", colour._get_state())
    )
    reopened = Image(data, **attributes)
    assert reopened.rgb and np.allclose(reopened.data_to_world((3.0, 4.0)), colour.data_to_world((3.0, 4.0)))


def test_a_pyramid_is_saved_at_full_resolution(tmp_path):
    from napari.layers import Image

    full = np.random.default_rng(1).integers(0, 255, (64, 80), dtype=np.uint8)
    pyramid = Image([full, full[::2, ::2], full[::4, ::4]], multiscale=True, scale=(0.5, 0.5))
    (written,) = _write_through_manifest(
        tmp_path / "pyramid.tif", [(pyramid.data, pyramid._get_state(), "image")]
    )
    data, attributes, _ = read_tiff_layer(written)
    np.testing.assert_array_equal(data, full)
    assert attributes["scale"] == (0.5, 0.5)


def _write_through_manifest(path, layers):
    import npe2

    npe2.PluginManager.instance().discover()
    return npe2.write(str(path), layers, plugin_name="napari-cellseg")


def test_names_with_dots_keep_their_text_when_a_suffix_is_added(tmp_path):
    """napari proposes the layer name; 'slide.2 cells' must not become slide.tif (and
    'slide.3 cells' overwrite it)."""
    labels = np.zeros((8, 8), np.uint16)
    labels[2:5, 2:5] = 1
    from napari_cellseg.napari_io import write_labels_geojson, write_labels_imagej_rois, write_labels_layer

    for name in ("slide.2 cells", "slide.3 cells"):  # the TIFF writer picked in the Save dialog's filter
        assert write_labels_layer(str(tmp_path / name), labels, {}) == [str(tmp_path / f"{name}.tif")]

    assert write_labels_geojson(str(tmp_path / "slide.2"), labels, {}) == [str(tmp_path / "slide.2.geojson")]
    assert write_labels_imagej_rois(str(tmp_path / "slide.2"), labels, {}) == [str(tmp_path / "slide.2.zip")]
    assert write_labels_imagej_rois(str(tmp_path / "cells.png"), labels, {}) == [str(tmp_path / "cells.zip")]


def test_outlines_open_placed_like_the_image_beside_them(tmp_path):
    from napari_cellseg.inference.outlines import write_geojson
    from napari_cellseg.outlines_io import read_outlines_layers

    labels = np.zeros((30, 40), np.uint16)
    labels[5:12, 6:14] = 1
    attributes = {"name": "img", "scale": (0.25, 0.25), "translate": (100.0, 200.0)}
    write_tiff_layer(tmp_path / "img.tif", np.zeros((30, 40), np.uint8), "image", attributes)
    write_geojson(tmp_path / "img.geojson", labels)
    ((data, placed, _kind),) = read_outlines_layers(str(tmp_path / "img.geojson"))
    np.testing.assert_array_equal(data, labels)
    assert placed["scale"] == (0.25, 0.25) and placed["translate"] == (100.0, 200.0)


def test_find_images_takes_one_folder_as_a_string_and_an_exclude_string(tmp_path):
    from napari_cellseg.io import find_images

    (tmp_path / "in").mkdir()
    write_tiff_layer(tmp_path / "in" / "a.tif", np.ones((4, 4), np.uint8), "image")
    # One string is one path: it used to be iterated letter by letter.
    assert find_images(str(tmp_path / "in")) == [tmp_path / "in" / "a.tif"]
    assert find_images(tmp_path / "in") == [tmp_path / "in" / "a.tif"]
    assert find_images([tmp_path / "in"], exclude=str(tmp_path / "in")) == []  # was an AttributeError
    with pytest.raises(TypeError, match="paths must hold file or folder paths, got 3"):
        find_images([tmp_path, 3])


def test_find_images_lists_one_file_under_two_spellings_once(tmp_path, monkeypatch):
    from napari_cellseg.io import find_images

    (tmp_path / "dir").mkdir()
    write_tiff_layer(tmp_path / "dir" / "a.tif", np.ones((4, 4), np.uint8), "image")
    (tmp_path / "dir" / "b.tif").symlink_to("a.tif")  # another name: an image of its own
    monkeypatch.chdir(tmp_path)
    rel, absolute = Path("dir/a.tif"), tmp_path / "dir" / "a.tif"
    # relative + absolute, and ".." spellings: one file, listed under its first spelling
    assert find_images([rel, absolute]) == [rel]
    assert find_images([rel, Path("dir/../dir/a.tif")]) == [rel]
    # a folder and a file inside it, named absolutely (was a "same id" failure in segment)
    assert find_images([Path("dir"), absolute]) == [rel, Path("dir/b.tif")]
    assert find_images([absolute, Path("dir/b.tif")]) == [absolute, Path("dir/b.tif")]


@pytest.mark.parametrize(
    ("data", "layer_type", "message"),
    [
        (np.zeros((0, 8), np.uint16), "labels", r"2D or more and not empty, got shape \(0, 8\)"),
        (np.zeros(8, np.uint16), "labels", r"got shape \(8,\)"),
        (None, "labels", r"got shape \(\)"),
        (np.zeros((4, 4), object), "image", "image must be numeric pixels, got dtype object"),
        (np.full((4, 4), 0.5), "labels", "labels must be integer labels, got dtype float64"),
    ],
)
def test_write_tiff_layer_refuses_what_cannot_be_read_back(tmp_path, data, layer_type, message):
    with pytest.raises(ValueError, match=message):
        write_tiff_layer(tmp_path / "x.tif", data, layer_type)
    assert not (tmp_path / "x.tif").exists()


def test_read_image_of_a_folder_and_collapse_of_a_list(tmp_path):
    with pytest.raises(ImageReadError, match="a folder, not an image file"):
        read_image(tmp_path)
    np.testing.assert_array_equal(collapse_grey_rgb([[1, 2], [3, 4]]), [[1, 2], [3, 4]])


def test_a_four_dimensional_array_reads_back_with_its_shape(tmp_path):
    """A stack's probabilities (3, Z, H, W) are written as pages; they come back 4-D."""
    probabilities = np.random.default_rng(2).random((3, 2, 8, 10)).astype(np.float32)
    data, _, _ = read_tiff_layer(write_tiff_layer(tmp_path / "p.tif", probabilities, "image", {}))
    np.testing.assert_array_equal(data, probabilities)


def test_a_labels_pyramid_is_saved_from_its_full_resolution_level(tmp_path):
    # np.asarray of napari's MultiScaleData gives its smallest level: outlines landed at 1/4 of the cells
    from napari.layers._multiscale_data import MultiScaleData

    from napari_cellseg.data.outlines_import import read_outlines
    from napari_cellseg.napari_io import write_labels_geojson, write_labels_imagej_rois, write_labels_layer

    full = np.zeros((256, 256), np.uint16)
    full[100:200, 50:150] = 1
    pyramid = MultiScaleData([full, full[::2, ::2], full[::4, ::4]])
    attributes = {"name": "cells", "multiscale": True}
    (tif,) = write_labels_layer(str(tmp_path / "cells.tif"), pyramid, attributes)
    np.testing.assert_array_equal(read_tiff_layer(tif)[0], full)
    for written in (write_labels_geojson(str(tmp_path / "cells"), pyramid, attributes),
                    write_labels_imagej_rois(str(tmp_path / "cells"), pyramid, attributes)):  # fmt: skip
        labels = read_outlines(written[0], shape=full.shape).labels
        assert int((labels > 0).sum()) == 100 * 100 and labels[150, 100] > 0


def test_open_files_as_stack_gives_one_layer(tmp_path):
    # napari passes a list only for "Open Files as Stack": one layer of the planes, as napari's reader
    from napari_cellseg.outlines_io import napari_get_outlines_reader

    paths = []
    for index in range(2):
        paths.append(str(tmp_path / f"plane{index}.tif"))
        write_tiff_layer(paths[-1], np.full((10, 12), index, np.uint8), "image")
    ((data, _, kind),) = napari_get_reader(paths)(paths)
    assert data.shape == (2, 10, 12) and kind == "image" and data[1].max() == 1
    write_tiff_layer(tmp_path / "other.tif", np.zeros((10, 13), np.uint8), "image")
    with pytest.raises(ValueError, match=r"other.tif: cannot stack a uint8 image of shape \(10, 13\)"):
        napari_get_reader([*paths, str(tmp_path / "other.tif")])([*paths, str(tmp_path / "other.tif")])
    assert napari_get_outlines_reader(paths) is None  # planes are no outlines: napari's turn


def test_probing_a_garbage_tiff_header_logs_nothing(tmp_path, caplog):
    # segment printed "<tifffile.TiffPages @...> invalid offset to first page" for a garbage <id>.tif
    from napari_cellseg.io import stored_layer

    garbage = tmp_path / "a.tif"
    garbage.write_bytes(b"II*\x00\xff\xff\xff\x00 not a TIFF at all")
    with caplog.at_level("DEBUG"):
        assert stored_layer(garbage) == {}
    assert [r.getMessage() for r in caplog.records if r.name.startswith("tifffile")] == []


def test_probing_headers_from_threads_never_leaves_tifffile_muted(tmp_path, caplog):
    # the logger's one `disabled` flag, saved and restored by threads out of order, could stay on
    import logging
    from concurrent.futures import ThreadPoolExecutor

    from napari_cellseg.io import stored_layer

    garbage = tmp_path / "a.tif"
    garbage.write_bytes(b"II*\x00\xff\xff\xff\x00 not a TIFF at all")
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(stored_layer, [garbage] * 64)) == [{}] * 64
    log = logging.getLogger("tifffile")
    assert not log.disabled
    with caplog.at_level("WARNING", logger="tifffile"):
        log.warning("still heard")
    assert "still heard" in [r.getMessage() for r in caplog.records]
