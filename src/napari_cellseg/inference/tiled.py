"""The tiled prediction engine shared by :mod:`.predict`, :mod:`.segment` and :mod:`.big`.

One plane is read tile by tile (numpy, dask or zarr), each tile normalised
with percentiles computed once from the whole plane, resampled to the model's
object scale, run through the network in batches and blended back with a
cosine window (:mod:`.tiling`). Generators yield :class:`PredictProgress` and
return their result (:func:`run_to_end` drives them).
"""

from __future__ import annotations

import warnings
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ..generators import run_to_end  # noqa: F401  (re-exported: drives the generators below)
from .images import ImageLayout, PlaneReader
from .scale import resize_channels_first, scale_factor, scaled_size
from .tiling import Tile, blend_window, tile_grid

DEFAULT_TILE_SIZE = 512
DEFAULT_OVERLAP = 64  # in network pixels; wider than the network's edge effects
MIN_TILE_SIZE = 32  # network pixels: smaller tiles are mostly blending margin

R = TypeVar("R")


@dataclass(frozen=True)
class PredictProgress:
    """Progress of a prediction: ``done`` of ``total`` units of ``stage``."""

    stage: str  # "diameter", "predict", "watershed" or "done"
    done: int
    total: int
    plane: int = 0
    n_planes: int = 1

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


def plane_percentiles(plane: PlaneReader, normalization) -> Any:
    """Normalisation percentiles of a whole plane, from a strided subsample."""
    from ..data.normalize import compute_percentiles

    # The same strided grid compute_percentiles would take from the whole plane.
    return compute_percentiles(plane.subsample(normalization.max_samples), normalization)


def check_tiling(tile_size: Any, overlap: Any, batch_size: Any = None) -> tuple[int, int, int | None]:
    """``(tile_size, overlap, batch_size)`` as ints, or a ``ValueError``/``TypeError`` naming the bad one.

    ``tile_size >= MIN_TILE_SIZE``, ``0 <= overlap <= tile_size // 2`` (a wider
    overlap multiplies the tiles) and ``batch_size`` None or >= 1.
    """
    from ..data.arguments import check_integer

    tile_size = check_integer(tile_size, "tile_size", minimum=MIN_TILE_SIZE)
    overlap = check_integer(overlap, "overlap", minimum=0)
    if overlap > tile_size // 2:
        raise ValueError(
            f"overlap must be in [0, {tile_size // 2}] (at most half of tile_size={tile_size}), got {overlap}"
        )
    if batch_size is not None:
        batch_size = check_integer(batch_size, "batch_size", minimum=1)
    return tile_size, overlap, batch_size


def _batches(items: list[Tile], size: int) -> Iterable[list[Tile]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def iter_predict_region(
    runner,
    plane: PlaneReader,
    normalization,
    percentiles,
    factor: float = 1.0,
    region: tuple[slice, slice] | None = None,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int | None = None,
) -> Generator[PredictProgress, None, np.ndarray]:
    """Predict probabilities for a ``region`` of one plane, tile by tile.

    ``tile_size`` and ``overlap`` are in network pixels; in image pixels they
    are divided by ``factor``. Memory is one float32 ``(3, h, w)`` buffer for
    the region plus one batch of tiles. Returns float32 ``(3, h, w)``.
    """
    from ..data.normalize import normalize_image

    height, width = plane.shape
    ys, xs = region if region is not None else (slice(0, height), slice(0, width))
    y_off, x_off = ys.start or 0, xs.start or 0
    y_end = height if ys.stop is None else min(ys.stop, height)
    x_end = width if xs.stop is None else min(xs.stop, width)
    shape = (y_end - y_off, x_end - x_off)
    tile_size, overlap, batch_size = check_tiling(tile_size, overlap, batch_size)
    tile_px = max(8, round(tile_size / factor))
    # Rounding after resampling may push the overlap a pixel past half the tile.
    overlap_px = min(round(overlap / factor), tile_px // 2)
    # Stride alignment holds in network pixels only, i.e. without resampling,
    # and relative to the image's origin.
    align = getattr(runner, "align", 1)
    if factor != 1.0 or y_off % align or x_off % align:
        align = 1
    tiles = tile_grid(shape, tile_px, overlap_px, align)
    net_shape = (scaled_size(tiles[0].height, factor), scaled_size(tiles[0].width, factor))
    batch_size = min(batch_size or runner.default_batch_size(), len(tiles))
    if getattr(runner, "optimize", False):  # one batch shape: one compilation
        batch_size = max(b for b in range(1, batch_size + 1) if len(tiles) % b == 0)
    accumulated = np.zeros((3, *shape), np.float32)
    weights = np.zeros(shape, np.float32)
    windows: dict[tuple, np.ndarray] = {}
    done = 0
    for batch in _batches(tiles, batch_size):
        inputs = []
        for tile in batch:
            ty, tx = tile.slices
            raw = plane.read(
                slice(y_off + ty.start, y_off + ty.stop), slice(x_off + tx.start, x_off + tx.stop)
            )
            normalised = normalize_image(raw, normalization, percentiles=percentiles)
            inputs.append(resize_channels_first(normalised, net_shape))
        probabilities = runner(np.stack(inputs))
        for tile, probs in zip(batch, probabilities):
            probs = resize_channels_first(probs, (tile.height, tile.width))
            window = windows.get(tile.neighbours)
            if window is None:
                window = windows[tile.neighbours] = blend_window(tile, overlap_px)
            ty, tx = tile.slices
            accumulated[:, ty, tx] += probs * window
            weights[ty, tx] += window
        done += len(batch)
        yield PredictProgress("predict", done, len(tiles))
    accumulated /= weights
    return accumulated


def make_runner(
    model, config, device: Any = None, amp: bool = True, optimize: bool = False, tta: bool = False,
    tta_zooms: Any = None,
):  # fmt: skip
    """A :class:`~.runtime.TileRunner` for ``model`` (an existing runner is passed through)."""
    from .runtime import TileRunner

    if isinstance(model, TileRunner):
        return model
    return TileRunner(
        model, config.loss, device=device, amp=amp, optimize=optimize, tta=tta, tta_zooms=tta_zooms
    )


def _with_plane(gen: Generator, plane: int, n_planes: int) -> Generator:
    """Relay a region generator's reports tagged with the plane index."""
    while True:
        try:
            report = next(gen)
        except StopIteration as stop:
            return stop.value
        yield PredictProgress(report.stage, report.done, report.total, plane, n_planes)


def resolve_diameter(config, diameter: float | None) -> float | None:
    """``diameter``, or the model's ``default_diameter`` when None (0 = estimate)."""
    if diameter is None:
        return getattr(config, "default_diameter", None)
    return diameter


def iter_scale_factor(
    runner,
    config,
    image: Any,
    layout: ImageLayout,
    diameter: float | None,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    params=None,
) -> Generator[PredictProgress, None, float]:
    """The resampling factor for ``diameter`` (0: estimated by a first pass and up to two more; None: the model's default)."""
    model_diameter = getattr(config, "object_diameter", None)
    diameter = resolve_diameter(config, diameter)
    if diameter is None:
        return 1.0
    if model_diameter is None:
        warnings.warn(
            "the model's config has no object_diameter (its training scale): the nucleus "
            f"diameter {diameter} is ignored and the image is used at its own scale",
            stacklevel=2,
        )
        return 1.0
    if diameter == 0:
        from .segment import iter_estimate_diameter

        diameter = yield from iter_estimate_diameter(
            runner, config, image, layout, params=params, tile_size=tile_size, overlap=overlap
        )
        if diameter is None:
            return 1.0
    return scale_factor(model_diameter, diameter)
