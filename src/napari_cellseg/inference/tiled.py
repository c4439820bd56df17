"""The tiled prediction engine shared by :mod:`.predict`, :mod:`.segment` and :mod:`.big`.

One plane is read tile by tile (numpy, dask or zarr), each tile normalised
with percentiles computed once from the whole plane, resampled to the model's
object scale, run through the network in batches and blended back with a
cosine window (:mod:`.tiling`). Generators yield :class:`PredictProgress` and
return their result (:func:`run_to_end` drives them).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ..generators import (
    run_to_end,  # noqa: F401  (re-exported: drives the generators below)
    warn_caller,
)
from .images import ImageLayout, PlaneReader
from .scale import scale_factor, scaled_size
from .tiling import Tile, blend_sums, blend_window, tile_grid

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

    ``tile_size`` and ``overlap`` are in network pixels. At ``factor != 1`` the tiles
    are cut from the whole plane resampled by ``factor`` (one grid for every tile and
    region, see :func:`_iter_predict_resampled`). Memory is one float32 ``(3, h, w)``
    buffer for the region plus one batch of tiles. Returns float32 ``(3, h, w)``.
    """
    from ..data.normalize import normalize_image

    height, width = plane.shape
    ys, xs = region if region is not None else (slice(0, height), slice(0, width))
    y_off, x_off = ys.start or 0, xs.start or 0
    y_end = height if ys.stop is None else min(ys.stop, height)
    x_end = width if xs.stop is None else min(xs.stop, width)
    tile_size, overlap, batch_size = check_tiling(tile_size, overlap, batch_size)
    if factor != 1.0:
        return (
            yield from _iter_predict_resampled(
                runner, plane, normalization, percentiles, factor, (y_off, y_end, x_off, x_end),
                tile_size, overlap, batch_size,
            )
        )  # fmt: skip
    shape = (y_end - y_off, x_end - x_off)
    # Stride alignment relative to the image's origin.
    align = getattr(runner, "align", 1)
    if y_off % align or x_off % align:
        align = 1
    tiles = tile_grid(shape, tile_size, overlap, align)
    accumulated = np.zeros((3, *shape), np.float32)
    weights = np.zeros(shape, np.float32)
    windows: dict[tuple, np.ndarray] = {}
    done = 0
    for batch in _batches(tiles, _batch_size(runner, batch_size, len(tiles))):
        inputs = []
        for tile in batch:
            ty, tx = tile.slices
            raw = plane.read(
                slice(y_off + ty.start, y_off + ty.stop), slice(x_off + tx.start, x_off + tx.stop)
            )
            inputs.append(normalize_image(raw, normalization, percentiles=percentiles))
        probabilities = runner(np.stack(inputs))
        for tile, probs in zip(batch, probabilities):
            window = windows.get(tile.neighbours)
            if window is None:
                window = windows[tile.neighbours] = blend_window(tile, overlap)
            ty, tx = tile.slices
            accumulated[:, ty, tx] += probs * window
            weights[ty, tx] += window
        done += len(batch)
        yield PredictProgress("predict", done, len(tiles))
    accumulated /= weights
    return accumulated


def _batch_size(runner, batch_size: int | None, n_tiles: int) -> int:
    batch_size = min(batch_size or runner.default_batch_size(), n_tiles)
    if getattr(runner, "optimize", False):  # one batch shape: one compilation
        batch_size = max(b for b in range(1, batch_size + 1) if n_tiles % b == 0)
    return batch_size


def _iter_predict_resampled(
    runner, plane: PlaneReader, normalization, percentiles, factor: float, bounds: tuple[int, int, int, int],
    tile_size: int, overlap: int, batch_size: int | None,
) -> Generator[PredictProgress, None, np.ndarray]:  # fmt: skip
    """:func:`iter_predict_region` at ``factor != 1``: tiles cut in the network's pixels of the whole plane.

    The plane resampled to ``scaled_size`` is one grid for every tile and region: each tile's
    input is rows of the whole-plane resampling matrices (:mod:`.resample`) applied to the
    window of the image they read, and its blended probabilities go back through rows of the
    inverse resampling. So the result does not depend on the tile size or the region, and one
    tile covering the plane gives what resizing the plane, predicting and resizing back gives.
    """
    from ..data.normalize import normalize_image
    from .resample import apply_axes, resample_matrix, support

    y_off, y_end, x_off, x_end = bounds
    height, width = plane.shape
    net_h, net_w = scaled_size(height, factor), scaled_size(width, factor)
    shrinking = net_h * net_w < height * width  # as resize_channels_first chooses
    into_y, into_x = resample_matrix(height, net_h, shrinking), resample_matrix(width, net_w, shrinking)
    back_y, back_x = (
        resample_matrix(net_h, height, not shrinking),
        resample_matrix(net_w, width, not shrinking),
    )
    # the network pixels the region's output is made from; starts on the stride for alignment
    align = getattr(runner, "align", 1)
    n_y0, n_y1 = support(back_y, y_off, y_end)
    n_x0, n_x1 = support(back_x, x_off, x_end)
    n_y0, n_x0 = n_y0 - n_y0 % align, n_x0 - n_x0 % align
    tiles = tile_grid((n_y1 - n_y0, n_x1 - n_x0), tile_size, overlap, align)
    windows: dict[tuple, np.ndarray] = {}
    for tile in tiles:  # one window per kind of tile (which sides have a neighbour)
        if tile.neighbours not in windows:
            windows[tile.neighbours] = blend_window(tile, overlap)
    # the windows' sum as two 1-D factors: a weight per network pixel would grow with factor**2
    row_sums, col_sums = blend_sums(tiles, overlap, (n_y1 - n_y0, n_x1 - n_x0))
    out_rows, out_cols = back_y[y_off:y_end], back_x[x_off:x_end]
    accumulated = np.zeros((3, y_end - y_off, x_end - x_off), np.float32)
    done = 0
    for batch in _batches(tiles, _batch_size(runner, batch_size, len(tiles))):
        inputs = []
        for tile in batch:
            ty, tx = tile.slices
            rows = into_y[n_y0 + ty.start : n_y0 + ty.stop]
            cols = into_x[n_x0 + tx.start : n_x0 + tx.stop]
            (r0, r1), (c0, c1) = support(rows, 0, rows.shape[0]), support(cols, 0, cols.shape[0])
            raw = plane.read(slice(r0, r1), slice(c0, c1))
            normalised = normalize_image(raw, normalization, percentiles=percentiles)
            inputs.append(apply_axes(normalised, rows[:, r0:r1], cols[:, c0:c1]))
        probabilities = runner(np.stack(inputs))
        for tile, probs in zip(batch, probabilities):
            ty, tx = tile.slices
            weights = np.outer(row_sums[ty], col_sums[tx])
            share = probs * (windows[tile.neighbours] / weights)  # the tiles' shares sum to 1
            rows = out_rows[:, n_y0 + ty.start : n_y0 + ty.stop]
            cols = out_cols[:, n_x0 + tx.start : n_x0 + tx.stop]
            (r0, r1), (c0, c1) = _used_rows(rows), _used_rows(cols)
            if r1 > r0 and c1 > c0:
                accumulated[:, r0:r1, c0:c1] += apply_axes(share, rows[r0:r1], cols[c0:c1])
        done += len(batch)
        yield PredictProgress("predict", done, len(tiles))
    return accumulated


def _used_rows(matrix) -> tuple[int, int]:
    """``(first, last + 1)`` of the rows of a CSR matrix that hold an entry."""
    filled = np.flatnonzero(np.diff(matrix.indptr))
    return (int(filled[0]), int(filled[-1]) + 1) if filled.size else (0, 0)


def make_runner(
    model, config, device: Any = None, amp: bool = True, optimize: bool = False, tta: bool = False,
    tta_zooms: Any = None,
):  # fmt: skip
    """A :class:`~.runtime.TileRunner` for ``model`` (an existing runner is passed through).

    Raises
    ------
    TypeError
        If ``model`` is not a network or ``config`` not its ``ModelConfig`` (a model
        folder's path passed as the model, the two swapped).
    """
    from .runtime import TileRunner

    check_model_and_config(model, config)
    if isinstance(model, TileRunner):
        return model
    return TileRunner(
        model, config.loss, device=device, amp=amp, optimize=optimize, tta=tta, tta_zooms=tta_zooms
    )


def check_model_and_config(model, config) -> None:
    """Raise ``TypeError`` unless ``model`` is a network (or a runner) and ``config`` a ``ModelConfig``."""
    import torch

    from ..models.checkpoint import ModelConfig
    from .runtime import TileRunner

    load = "load both with resolve_model(path) (None: the bundled model), which returns (model, config)"
    if not isinstance(model, (torch.nn.Module, TileRunner)):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__} {model!r:.80}: {load}")
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be the model's ModelConfig, got {type(config).__name__}: {load}")


def _with_plane(gen: Generator, plane: int, n_planes: int) -> Generator:
    """Relay a region generator's reports tagged with the plane index."""
    while True:
        try:
            report = next(gen)
        except StopIteration as stop:
            return stop.value
        yield PredictProgress(report.stage, report.done, report.total, plane, n_planes)


def resolve_diameter(config, diameter: float | None) -> float | None:
    """``diameter``, or the model's ``default_diameter`` when None (0 = estimate).

    Raises
    ------
    TypeError, ValueError
        If ``diameter`` is not a number (a string) or is negative or not finite.
    """
    if diameter is None:
        return getattr(config, "default_diameter", None)
    from ..data.arguments import check_number

    try:
        return check_number(diameter, "diameter", minimum=0)
    except (TypeError, ValueError) as err:
        raise type(err)(
            f"{err}: give the nuclei's diameter in image pixels (0: estimate it; None: the model's default)"
        ) from None


def iter_scale_factor(
    runner,
    config,
    image: Any,
    layout: ImageLayout,
    diameter: float | None,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    params=None,
    percentiles: Any = None,
) -> Generator[PredictProgress, None, float]:
    """The resampling factor for ``diameter`` (0: estimated by a first pass and up to two more; None: the model's default).

    ``percentiles``: the middle plane's :func:`plane_percentiles`, when the caller has them.
    """
    model_diameter = getattr(config, "object_diameter", None)
    diameter = resolve_diameter(config, diameter)
    if diameter is None:
        return 1.0
    if model_diameter is None:
        warn_caller(
            "the model's config has no object_diameter (its training scale): the nucleus "
            f"diameter {diameter} is ignored and the image is used at its own scale"
        )
        return 1.0
    if diameter == 0:
        from .segment import iter_estimate_diameter

        diameter = yield from iter_estimate_diameter(
            runner, config, image, layout, params=params, tile_size=tile_size, overlap=overlap,
            percentiles=percentiles,
        )  # fmt: skip
        if diameter is None:
            return 1.0
    return scale_factor(model_diameter, diameter)
