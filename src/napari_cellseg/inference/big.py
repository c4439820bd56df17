"""Images larger than memory: block-wise prediction and watershed, written to zarr.

Memory is bounded by the block size, not the image size:

1. **Probabilities.** The plane is cut into blocks; each block is predicted
   with a context margin (tiles blended as in :mod:`.predict`, percentiles from
   the whole plane) and its core is written to a ``(3, H, W)`` zarr array.
2. **Instances.** Each block's probabilities are read with a wider context
   margin and run through the watershed. An object is kept by the block that
   holds its bounding-box centre, so each nucleus is decided once, by a block
   that sees it whole (as StarDist's ``predict_instances_big`` does). Kept
   objects are written where the output is still empty; an object that would
   land mostly on already written pixels is the same nucleus seen from the
   neighbouring block and is dropped. Ids are assigned globally and
   consecutively as objects are written.

The context must exceed the largest nucleus radius; objects that touch the
edge of their block's context are counted as ``truncated`` in the result so a
too-small context shows.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import shutil
import tempfile
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .images import PlaneReader, as_image_array, describe_layout
from .tiled import (
    DEFAULT_OVERLAP,
    DEFAULT_TILE_SIZE,
    PredictProgress,
    check_tiling,
    iter_predict_region,
    iter_scale_factor,
    make_runner,
    plane_percentiles,
    run_to_end,
)

DEFAULT_BLOCK_SIZE = 2048
DEFAULT_CONTEXT = 128  # image px around a block for the watershed; > largest nucleus radius
# Smaller blocks multiply the blocks (each costs its context margin) for no gain in memory.
MIN_BLOCK_SIZE = 64
# An object whose still-free pixels are fewer than this share was written by a neighbour.
DUPLICATE_SHARE = 0.5


@dataclass
class BigSegmentationResult:
    """Labels and probabilities of a big image, as zarr arrays."""

    labels: Any  # zarr (H, W) uint32
    probabilities: Any | None  # zarr (3, H, W), or None when it was a temporary
    n_instances: int
    truncated: int  # objects cut by their block's context: raise ``context`` if many
    scale_factor: float = 1.0


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def release_free_memory() -> None:
    """Hand the heap's free pages back to the system between blocks (glibc only).

    glibc keeps what the network's passes freed, and tiles of each shape leave their own
    pages: ~0.56 GB stayed resident after the blocks of a 10000 x 10000 image, under the
    watershed's peak (docs/benchmarks.md). Nothing computed changes.
    """
    import ctypes

    try:  # no malloc_trim on macOS, Windows or musl: nothing to do there
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, TypeError, AttributeError):
        return
    trim(0)


def _block_cores(shape: tuple[int, int], block: int) -> list[tuple[slice, slice]]:
    height, width = shape
    return [
        (slice(y, min(y + block, height)), slice(x, min(x + block, width)))
        for y in range(0, height, block)
        for x in range(0, width, block)
    ]


def _grow(core: tuple[slice, slice], margin: int, shape: tuple[int, int]) -> tuple[slice, slice]:
    return tuple(slice(max(0, s.start - margin), min(n, s.stop + margin)) for s, n in zip(core, shape))


def _check_block_size(block_size: Any) -> int:
    from ..data.arguments import check_integer

    return check_integer(block_size, "block_size", minimum=MIN_BLOCK_SIZE)


def _check_output(out: Any, shape: tuple[int, ...] | None, kind: str, name: str) -> None:
    """Refuse, before any work, an output that exists or a caller's array of the wrong shape or dtype."""
    if isinstance(out, (str, os.PathLike)):
        if Path(out).exists():
            raise FileExistsError(f"{out}: already exists; remove it or choose another output")
        return
    if not (hasattr(out, "shape") and hasattr(out, "dtype") and hasattr(out, "__setitem__")):
        raise TypeError(f"{name} must be a zarr path or a writable array, got {type(out).__name__}")
    if shape is not None and tuple(out.shape) != tuple(shape):
        raise ValueError(f"{name}: output array has shape {tuple(out.shape)}, expected {tuple(shape)}")
    dtype = np.dtype(out.dtype)
    if kind == "labels" and not (dtype.kind in "iu" and dtype.itemsize >= 4):
        # A narrower type would wrap the ids (cell 256 of a uint8 array becomes cell 0).
        raise ValueError(f"{name}: labels need an integer array of 32 bits or more (uint32), got {dtype}")
    if kind == "probabilities" and dtype.kind != "f":
        raise ValueError(f"{name}: probabilities need a float array, got {dtype}")


def open_zarr_output(out: Any, shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...]):
    """A new zarr array at path ``out`` (refused if it exists), or ``out`` itself if an array."""
    import zarr

    if not isinstance(out, (str, os.PathLike)):
        if shape is not None and tuple(out.shape) != tuple(shape):
            raise ValueError(f"output array has shape {tuple(out.shape)}, expected {tuple(shape)}")
        return out
    if Path(out).exists():
        raise FileExistsError(f"{out}: already exists; remove it or choose another output")
    return zarr.open_array(str(out), mode="w", shape=shape, chunks=chunks, dtype=dtype, fill_value=0)


def iter_predict_probabilities_big(
    model, config, image: Any, out: Any, *,
    block_size: int = DEFAULT_BLOCK_SIZE, tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP, batch_size: int | None = None, device: Any = None,
    diameter: float | None = None, channel: int | None = None, channel_axis: int | None = None,
    amp: bool = True, optimize: bool = False, tta: bool = False, tta_zooms: Any = None,
    dtype: str = "float16", scale_factor: float | None = None,
) -> Generator[PredictProgress, None, tuple[Any, float]]:  # fmt: skip
    """Generator version of :func:`predict_probabilities_big`; returns ``(zarr array, factor)``.

    ``scale_factor``, when given, replaces ``diameter``: the planes of a stack share the
    factor measured once on the stack (as :func:`.segment.segment_image` does).
    """
    tile_size, overlap, batch_size = check_tiling(tile_size, overlap, batch_size)
    block_size = _check_block_size(block_size)
    try:
        stored = np.dtype(dtype)
    except TypeError:
        stored = None
    if stored is None or stored.kind != "f":
        raise ValueError(f"dtype must be a float type such as 'float16' or 'float32', got {dtype!r}")
    image = as_image_array(image)  # a nested list is read as an array, not as a shape-less object
    layout = describe_layout(image, channel, channel_axis)
    if layout.stack:
        raise ValueError(
            f"big mode segments one 2D plane; the image (shape {layout.shape}) is a stack: "
            "pass one plane at a time"
        )
    _check_output(out, (3, *layout.plane_shape), "probabilities", "out")
    runner = make_runner(model, config, device, amp, optimize, tta, tta_zooms)
    if scale_factor is None:
        factor = yield from iter_scale_factor(runner, config, image, layout, diameter, tile_size, overlap)
    elif not (isinstance(scale_factor, numbers.Real) and 0 < scale_factor < math.inf):
        raise ValueError(f"scale_factor must be a number > 0, got {scale_factor!r}")
    else:
        factor = float(scale_factor)
    plane = PlaneReader(image, layout)
    shape = plane.shape
    # Blocks and margins on multiples of the network's stride keep the tiles on
    # the whole image's pixel grid (see tiled.iter_predict_region).
    align = getattr(runner, "align", 1)
    block = _round_up(min(block_size, max(shape)), align)
    probabilities = open_zarr_output(out, (3, *shape), dtype, (3, block, block))
    percentiles = plane_percentiles(plane, config.normalization)
    # Context for the network: the blending overlap, in image px, plus a safety margin.
    margin = _round_up(math.ceil(overlap / factor) + 16, align)
    cores = _block_cores(shape, block)
    for index, core in enumerate(cores):
        region = _grow(core, margin, shape)
        gen = iter_predict_region(
            runner, plane, config.normalization, percentiles, factor, region,
            tile_size, overlap, batch_size,
        )  # fmt: skip
        predicted = run_to_end(gen)
        inner = tuple(slice(c.start - r.start, c.stop - r.start) for c, r in zip(core, region))
        probabilities[(slice(None), *core)] = predicted[(slice(None), *inner)].astype(dtype)
        del predicted
        release_free_memory()
        yield PredictProgress("predict", index + 1, len(cores))
    return probabilities, factor


def predict_probabilities_big(model, config, image: Any, out: Any, *, callback=None, **kwargs):
    """Predict the probabilities of a big 2D image block by block into a zarr array.

    Parameters
    ----------
    model, config
        As for :func:`.predict.predict_probabilities`.
    image : array_like
        A 2D grey, RGB or multichannel plane; numpy, dask or zarr (read lazily).
    out : str, PathLike or zarr array
        Where to write: a new zarr path, or an array of shape ``(3, H, W)``.
    callback : callable, optional
        Called with a :class:`~.predict.PredictProgress` per block.
    **kwargs
        ``block_size`` (image px, >= 64, default 2048), ``tile_size``, ``overlap``,
        ``batch_size``, ``device``, ``diameter``, ``channel``, ``channel_axis``,
        ``amp``, ``optimize``, ``tta``, ``tta_zooms``, ``dtype`` (of the stored probabilities, default
        float16), ``scale_factor`` (a resampling factor already known; ``diameter`` is then unused).

    Returns
    -------
    zarr.Array
        ``(3, H, W)`` probabilities.
    """
    gen = iter_predict_probabilities_big(model, config, image, out, **kwargs)
    return run_to_end(gen, callback)[0]


def _write_block(labels_out, local: np.ndarray, region, core, next_id: int) -> tuple[int, int]:
    """Write the objects of ``local`` whose bbox centre is in ``core``; return (next id, truncated)."""
    from scipy import ndimage

    boxes = ndimage.find_objects(local)
    n = len(boxes)
    keep = np.zeros(n + 1, bool)
    truncated = 0
    limits = [(r.start, r.stop) for r in region]
    for label, box in enumerate(boxes, start=1):
        if box is None:
            continue
        centre = [r.start + (b.start + b.stop - 1) / 2 for r, b in zip(region, box)]
        if all(c.start <= x < c.stop for c, x in zip(core, centre)):
            keep[label] = True
            touches = any(
                (b.start == 0 and lo > 0) or (b.stop == r.stop - r.start and hi < total)
                for b, r, (lo, hi), total in zip(box, region, limits, labels_out.shape)
            )
            truncated += int(touches)
    if not keep.any():
        return next_id, truncated
    existing = np.asarray(labels_out[region])
    free = existing == 0
    kept = keep[local]
    totals = np.bincount(local[kept], minlength=n + 1)
    free_counts = np.bincount(local[kept & free], minlength=n + 1)
    keep &= free_counts >= DUPLICATE_SHARE * np.maximum(totals, 1)
    n_new = int(keep.sum())
    top = np.iinfo(np.dtype(labels_out.dtype)).max
    if next_id + n_new - 1 > top:
        raise ValueError(
            f"more than {top} cells: they do not fit the labels array's dtype {labels_out.dtype}"
        )
    new_ids = np.zeros(n + 1, np.uint32)
    new_ids[keep] = np.arange(next_id, next_id + n_new, dtype=np.uint32)
    write = keep[local] & free
    existing[write] = new_ids[local[write]]
    labels_out[region] = existing
    return next_id + n_new, truncated


def iter_instances_big(
    probabilities: Any, out: Any, params=None, *,
    block_size: int = DEFAULT_BLOCK_SIZE, context: int = DEFAULT_CONTEXT,
) -> Generator[PredictProgress, None, BigSegmentationResult]:  # fmt: skip
    """Generator version of :func:`instances_big`."""
    from ..data.arguments import check_integer
    from .segment import watershed_params
    from .watershed import instances_from_probabilities

    # Everything is checked before the output is created: a refused call leaves nothing behind.
    if not (hasattr(probabilities, "shape") and hasattr(probabilities, "dtype")):
        probabilities = np.asarray(probabilities)
    shape = tuple(int(s) for s in probabilities.shape)
    if len(shape) != 3 or shape[0] != 3 or 0 in shape:
        raise ValueError(f"probabilities must be (3, H, W) with H, W >= 1, got shape {shape}")
    if np.dtype(probabilities.dtype).kind != "f":
        # 0..255 maps would pass every threshold test the wrong way: 0 cells, silently.
        raise ValueError(
            f"probabilities: expected float probabilities in [0, 1], got dtype {probabilities.dtype}"
        )
    params = watershed_params(None, params)
    block_size = _check_block_size(block_size)
    context = check_integer(context, "context", minimum=0)
    plane_shape = shape[1:]
    _check_output(out, plane_shape, "labels", "out")
    block = min(block_size, max(plane_shape))
    labels_out = open_zarr_output(out, plane_shape, np.uint32, (block, block))
    cores = _block_cores(plane_shape, block)
    next_id, truncated = 1, 0
    try:
        for index, core in enumerate(cores):
            region = _grow(core, context, plane_shape)
            block_probabilities = np.asarray(probabilities[(slice(None), *region)], np.float32)
            local = instances_from_probabilities(block_probabilities, params)
            next_id, cut = _write_block(labels_out, np.asarray(local), region, core, next_id)
            truncated += cut
            del block_probabilities, local
            release_free_memory()
            yield PredictProgress("watershed", index + 1, len(cores))
    except Exception:
        # A failed run leaves no half-written zarr that would refuse the retry.
        if isinstance(out, (str, os.PathLike)):
            shutil.rmtree(out, ignore_errors=True)
        raise
    return BigSegmentationResult(labels_out, probabilities, next_id - 1, truncated)


def instances_big(probabilities: Any, out: Any, params=None, *, callback=None, **kwargs):
    """Block-wise watershed of ``(3, H, W)`` probabilities into a zarr labels array.

    Parameters
    ----------
    probabilities : array_like
        ``(3, H, W)`` class probabilities (numpy, dask or zarr; read block by block).
    out : str, PathLike or zarr array
        A new zarr path, or an ``(H, W)`` array of zeros, integer of 32 bits or more (uint32).
    params : WatershedParams, optional
    callback : callable, optional
    **kwargs
        ``block_size`` (>= 64, default 2048) and ``context`` (>= 0, default 128), image px.

    Returns
    -------
    BigSegmentationResult
        Labels consecutive 1..N (uint32), with the count of truncated objects.
    """
    return run_to_end(iter_instances_big(probabilities, out, params, **kwargs), callback)


def iter_segment_big(
    model, config, image: Any, labels_out: Any, params=None, *,
    probabilities_out: Any = None, block_size: int = DEFAULT_BLOCK_SIZE,
    context: int = DEFAULT_CONTEXT, **predict_kwargs: Any,
) -> Generator[PredictProgress, None, BigSegmentationResult]:  # fmt: skip
    """Generator version of :func:`segment_big`."""
    from ..data.arguments import check_integer
    from .segment import watershed_params

    params = watershed_params(config, params)
    # Refused now, not after the whole image has been predicted.
    _check_block_size(block_size)
    check_integer(context, "context", minimum=0)
    _check_output(labels_out, None, "labels", "labels_out")
    scratch = contextlib.nullcontext()
    if probabilities_out is None:
        from .batch_outputs import scratch_folder

        # locked while in use: segment's sweep of abandoned scratch in this folder leaves it alone
        parent = Path(labels_out).parent if isinstance(labels_out, (str, os.PathLike)) else None
        scratch = scratch_folder(
            parent or Path(tempfile.gettempdir()), ".cellseg-probabilities-", sweep=False
        )
    with scratch as folder:
        if folder is not None:
            probabilities_out = folder / "probabilities.zarr"
        probabilities, factor = yield from iter_predict_probabilities_big(
            model, config, image, probabilities_out, block_size=block_size, **predict_kwargs
        )
        result = yield from iter_instances_big(
            probabilities, labels_out, params, block_size=block_size, context=context
        )
    result.scale_factor = factor
    if folder is not None:
        result.probabilities = None
    return result


def segment_big(
    model, config, image: Any, labels_out: Any, params=None, *,
    callback: Callable[[PredictProgress], None] | None = None, **kwargs: Any,
) -> BigSegmentationResult:  # fmt: skip
    """Segment a 2D image larger than memory into a zarr labels array.

    Parameters
    ----------
    model, config
        As for :func:`.segment.segment_image`.
    image : array_like
        numpy, dask or zarr 2D plane (grey, RGB, or multichannel with ``channel``).
    labels_out : str, PathLike or zarr array
        New zarr path (or empty ``(H, W)`` array) for the uint32 labels.
    params : WatershedParams, optional
        Default: the model's tuned parameters.
    callback : callable, optional
        Called with each :class:`~.predict.PredictProgress`.
    **kwargs
        ``probabilities_out`` (keep the probabilities there; default: a
        temporary zarr, deleted), ``block_size``, ``context``, and the
        prediction options of :func:`predict_probabilities_big`.
    """
    return run_to_end(iter_segment_big(model, config, image, labels_out, params, **kwargs), callback)
