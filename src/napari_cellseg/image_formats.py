"""How image files are decoded where imageio and Pillow alone get them wrong.

16-bit colour PNGs (Pillow cuts them to 8 bits), CMYK JPEGs (read as RGB + alpha),
planar RGB TIFFs (colour samples first), images past Pillow's decompression guard, and
files whose first bytes do not match their suffix. :func:`napari_cellseg.io.read_image`
uses these.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def allow_large_images() -> None:
    """Let Pillow open local images past its 179-megapixel guard against decompression bombs.

    Whole-slide crops and mosaics exceed it legitimately, and these are the user's own files.
    """
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None


class MultiImageTiffError(ValueError):
    """A TIFF holds several full images (series), of which only one could be read."""


# whole-slide files (SVS, NDPI, Philips, ...) keep small pictures of the slide as series beside it
_ASSOCIATED_SERIES = {"thumbnail", "label", "macro", "map", "overview"}


def full_image_series(tif) -> list:
    """A TIFF's series that are full images: not thumbnails, slide labels or reduced levels.

    A pyramid's levels are held by its series (``series.levels``), not listed here; a
    reduced-resolution page (NewSubfileType 1), a transparency mask (4) or a whole-slide file's associated image
    (thumbnail, label, macro) is left out.
    """
    full = []
    for series in tif.series:
        if str(series.name or "").strip().lower() in _ASSOCIATED_SERIES:
            continue
        page = series.pages[0] if len(series.pages) else None
        # reduced-resolution (NewSubfileType bit 1) and transparency-mask (bit 4) pages
        if page is not None and (getattr(page, "is_reduced", False) or getattr(page, "is_mask", False)):
            continue
        full.append(series)
    return full


def main_series_index(tif) -> int:
    """The index of the series that :func:`tiff_pixels` reads (the first full image)."""
    full = full_image_series(tif)
    return tif.series.index(full[0]) if full else 0


def tiff_pixels(tif) -> np.ndarray:
    """A TIFF's image, colour samples last (planar RGB is stored ``(3, H, W)``).

    Raises :class:`MultiImageTiffError` when the file holds more than one full image (an
    OME-TIFF of several positions, pages of different sizes): reading its first only was
    silent. Pages of one shape that tifffile reads as one series (a multi-page stack)
    are one image, a stack.
    """
    full = full_image_series(tif)
    if len(full) > 1:
        shapes = ", ".join(str(tuple(int(n) for n in s.shape)) for s in full)
        same = len({(tuple(x.shape), x.dtype) for x in full}) == 1
        stack = (  # pages written one by one (tifffile's append) may be the planes of one stack
            " If they are the planes of one z-stack, save them as one stack (tifffile: "
            "imwrite(path, np.stack(planes), metadata={'axes': 'ZYX'}))."
            if same
            else ""
        )
        raise MultiImageTiffError(
            f"holds {len(full)} images (TIFF series of shapes {shapes}), and one file is read as "
            "one image; save each image as its own file (in Fiji, Bio-Formats opens each series)." + stack
        )
    index = tif.series.index(full[0]) if full else 0
    axes = tif.series[index].axes if tif.series else ""
    data = tif.asarray(series=index)
    if "S" in axes and axes.index("S") != len(axes) - 1 and data.ndim == len(axes):
        data = np.moveaxis(data, axes.index("S"), -1)
    return data


def tiff_axes(tif) -> str:
    """The axes of the image :func:`tiff_pixels` reads (tifffile's letters), samples ``S`` last as it returns them."""
    if not tif.series:
        return ""
    axes = tif.series[main_series_index(tif)].axes
    return axes.replace("S", "") + ("S" if "S" in axes else "")


def tiff_channels(path: Path, shape: tuple[int, ...]) -> tuple[int | None, list[str]]:
    """Where a TIFF's own axes put two or more channels (OME ``CYX``, an ImageJ hyperstack
    ``ZCYX``) in its pixels of ``shape``, and their names (OME channel names, else ``ch0``...).

    ``(None, [])`` when the file names no such axis: tifffile's ``Q`` axis of a file without
    axes is left alone, as it may be z-planes.
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            axes = tiff_axes(tif)
            ome = tif.ome_metadata if tif.is_ome else None
    except Exception:  # read already by the caller; no axes to go by
        return None, []
    if "C" not in axes or len(axes) != len(shape) or shape[axes.index("C")] < 2:
        return None, []
    axis = axes.index("C")
    names = [f"ch{index}" for index in range(shape[axis])]
    try:
        channels = tifffile.xml2dict(ome)["OME"]["Image"]["Pixels"]["Channel"] if ome else []
    except (KeyError, TypeError, ValueError):  # several images or no Channel element
        channels = []
    channels = channels if isinstance(channels, list) else [channels]
    given = [str(c.get("Name") or "").strip() if isinstance(c, dict) else "" for c in channels]
    if len(given) == len(names) and all(given) and len(set(given)) == len(given):
        names = given
    return axis, names


def is_png_colour16(path: Path) -> bool:
    """16-bit RGB, RGBA or grey + alpha, which Pillow (under imageio) cuts to 8 bits."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    return len(head) == 26 and head[24] == 16 and head[25] in (2, 4, 6)


def read_png_colour16(path: Path) -> np.ndarray:
    import cv2

    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise ValueError("cannot be decoded as PNG")
    if data.ndim == 3:
        data = data[..., 2::-1]  # BGR(A) -> RGB, alpha dropped (grey + alpha comes as BGRA)
    return np.ascontiguousarray(data)


def read_jpeg(path: Path) -> np.ndarray:
    """A JPEG as grey or RGB: CMYK (print scans) converted, not read as RGB + alpha."""
    from PIL import Image

    with Image.open(path) as image:
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        return np.asarray(image)


_SIGNATURES = {
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".bmp": (b"BM",),
}


def content_kind(path: Path) -> str | None:
    """None if the file starts as its suffix says (or the suffix has no check), else a hint."""
    signatures = _SIGNATURES.get(path.suffix.lower())
    if signatures is None:
        return None
    with open(path, "rb") as handle:
        head = handle.read(16)
    if any(head.startswith(sig) for sig in signatures):
        return None
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "text"
    return repr(head[:8])
