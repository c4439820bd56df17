"""Tiled, blended prediction of class probabilities over images of any size.

The image is read tile by tile (numpy, dask or zarr), each tile normalised with
percentiles computed once from the whole plane (a strided subsample), resampled
to the model's object scale, run through the network in batches and blended
back with a cosine window (see :mod:`.tiling`). A nucleus on a tile seam gets
the same probabilities as one away from it.

Use :func:`predict_probabilities` (synchronous) or
:func:`iter_predict_probabilities` (a generator of :class:`PredictProgress`
reports whose return value is the probabilities; the GUI runs it in a thread
worker). :func:`segment_image` adds the watershed; for images larger than
memory see :mod:`.big`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np

from .images import PlaneReader, as_image_array, describe_layout
from .runtime import ModelNotFoundError, default_model_dir, load_default_model, resolve_model
from .segment import SegmentationResult, iter_segment_image, segment_image
from .tiled import (
    DEFAULT_OVERLAP,
    DEFAULT_TILE_SIZE,
    PredictProgress,
    _with_plane,
    check_tiling,
    iter_predict_region,
    iter_scale_factor,
    make_runner,
    plane_percentiles,
    run_to_end,
)

__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_TILE_SIZE",
    "ModelNotFoundError",
    "PredictProgress",
    "SegmentationResult",
    "default_model_dir",
    "iter_predict_probabilities",
    "iter_segment_image",
    "load_default_model",
    "predict_probabilities",
    "resolve_model",
    "run_to_end",
    "segment_image",
]


def iter_predict_probabilities(
    model,
    config,
    image: Any,
    *,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int | None = None,
    device: Any = None,
    diameter: float | None = None,
    channel: int | None = None,
    channel_axis: int | None = None,
    amp: bool = True,
    optimize: bool = False,
    tta: bool = False,
    tta_zooms: Sequence[float] | None = None,
) -> Generator[PredictProgress, None, np.ndarray]:
    """Generator version of :func:`predict_probabilities`; returns the probabilities."""
    tile_size, overlap, batch_size = check_tiling(tile_size, overlap, batch_size)
    image = as_image_array(image)  # a nested list is read as an array, not as a shape-less object
    layout = describe_layout(image, channel, channel_axis)
    runner = make_runner(model, config, device, amp, optimize, tta, tta_zooms)
    # the size estimate and the middle plane's pass normalise alike: one subsample, not two
    middle = layout.n_planes // 2
    known = {middle: plane_percentiles(PlaneReader(image, layout, middle), config.normalization)}
    factor = yield from iter_scale_factor(
        runner, config, image, layout, diameter, tile_size=tile_size, overlap=overlap,
        percentiles=known[middle],
    )  # fmt: skip
    planes = []
    for index in range(layout.n_planes):
        plane = PlaneReader(image, layout, index)
        percentiles = known.pop(index) if index in known else plane_percentiles(plane, config.normalization)
        gen = iter_predict_region(
            runner, plane, config.normalization, percentiles, factor,
            tile_size=tile_size, overlap=overlap, batch_size=batch_size,
        )  # fmt: skip
        planes.append((yield from _with_plane(gen, index, layout.n_planes)))
    yield PredictProgress("done", 1, 1, layout.n_planes - 1, layout.n_planes)
    return planes[0] if not layout.stack else np.stack(planes, axis=1)


def predict_probabilities(
    model,
    config,
    image: Any,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int | None = None,
    device: Any = None,
    diameter: float | None = None,
    *,
    channel: int | None = None,
    channel_axis: int | None = None,
    amp: bool = True,
    optimize: bool = False,
    tta: bool = False,
    tta_zooms: Sequence[float] | None = None,
    callback: Callable[[PredictProgress], None] | None = None,
) -> np.ndarray:
    """Class probabilities of an image, predicted tile by tile and blended.

    Parameters
    ----------
    model : torch.nn.Module
        Maps float32 ``(N, 3, H, W)`` to logits at the input's size.
    config : ModelConfig
        The model's config: ``normalization``, ``loss``, ``object_diameter``.
    image : array_like
        ``(H, W)`` grey, ``(H, W, 3)`` RGB, a multichannel image with
        ``channel``, or a ``(Z, H, W[, C])`` stack; numpy, dask or zarr.
        See :mod:`.images` for the layout rules.
    tile_size, overlap : int
        Largest tile size (>= 32) and minimum overlap of neighbouring tiles
        (``0 <= overlap <= tile_size // 2``), in network pixels.
    batch_size : int, optional
        Tiles per forward pass, >= 1 (default 8 on CUDA, 2 on the CPU).
    device : str or torch.device, optional
        Where to run (the model is moved there); None keeps the model's device.
    diameter : float, optional
        Nucleus diameter in the image, in pixels: the image is resampled to
        the model's ``object_diameter``. 0 estimates it (:func:`.segment.iter_estimate_diameter`);
        None uses the model's ``default_diameter`` (the image's own scale,
        unless the model was trained with size normalisation: then 0).
    channel, channel_axis : int, optional
        Channel choice for multichannel images.
    amp : bool
        bf16/fp16 autocast on CUDA.
    optimize : bool
        On the CPU, run a frozen trace of the network compiled per tile shape
        (see :func:`.runtime.compiled_for_shape`): pays off over many tiles or
        images of one size.
    tta : bool
        Test-time augmentation: average over the 8 flips and quarter turns of
        each tile (8x slower; a little more accurate, see docs/benchmarks.md).
    tta_zooms : sequence of float, optional
        Also average over each tile zoomed by these factors, for example
        :data:`.runtime.TTA_ZOOMS` (0.8, 1, 1.25): nuclei seen at
        several sizes (``len(tta_zooms)`` x slower; see docs/predicting.md).
    callback : callable, optional
        Called with each :class:`PredictProgress`.

    Returns
    -------
    numpy.ndarray
        float32 ``(3, H, W)`` probabilities of background, boundary and
        interior, summing to 1 per pixel; ``(3, Z, H, W)`` for a stack.
    """
    gen = iter_predict_probabilities(
        model, config, image, tile_size=tile_size, overlap=overlap, batch_size=batch_size,
        device=device, diameter=diameter, channel=channel, channel_axis=channel_axis, amp=amp,
        optimize=optimize, tta=tta, tta_zooms=tta_zooms,
    )  # fmt: skip
    return run_to_end(gen, callback)
