"""Instances from an image: tiled probabilities, then the watershed, at the right scale.

:func:`segment_image` is the one call the CLI, the batch runner and the GUI
share; :func:`iter_segment_image` is its generator form (reports, then the
:class:`SegmentationResult` as return value).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..classes import INTERIOR
from ..generators import warn_caller
from .images import ImageLayout, PlaneReader, as_image_array, describe_layout, spatial_metadata
from .scale import MAX_SCALE_FACTOR, MIN_SCALE_FACTOR, median_diameter, resize_channels_first, scaled_size
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
    resolve_diameter,
    run_to_end,
)

# The first pass of the diameter estimate looks at a central crop of the first size
# (image px); when that holds fewer than ESTIMATE_MIN_NUCLEI nuclei, at the next.
ESTIMATE_CROPS = (512, 1024)
ESTIMATE_MIN_NUCLEI = 30
# A pass at the image's own scale pulls the estimate towards the model's diameter (nuclei
# twice its size are measured a fifth too small, half its size a fifth too large): while an
# estimate is further than ESTIMATE_TOLERANCE from the diameter it was measured at, measure
# again with the image resampled by it, at most ESTIMATE_REFINE_PASSES more times.
ESTIMATE_TOLERANCE = 1.15
ESTIMATE_REFINE_PASSES = 2
# Nuclei several times the model's size are cut into fragments of about its size at the
# image's own scale, so the first pass also looks at the image shrunk by these factors
# (first crop only) and keeps the pass whose interiors the network is surest of; a shrunk
# pass counts only with ESTIMATE_COARSE_MIN_NUCLEI nuclei (small nuclei shrunk leave a few
# sure blobs). Passes below 1/2 run only when the own scale lost to 1/2 (or found nothing).
ESTIMATE_COARSE_FACTORS = (0.5, 0.25)
ESTIMATE_COARSE_MIN_NUCLEI = 5
# Under this many px a side at the model's scale (about 3 nuclei), the network sees too
# little around each pixel and the image's own contrast range stretches background into
# "nuclei": a 20 x 20 crop of stroma came out as one cell.
MIN_CONTEXT_PX = 64


@dataclass
class SegmentationResult:
    """Instances of one image and what produced them.

    ``labels`` has the image's spatial shape (``(H, W)`` or ``(Z, H, W)``) and
    keeps its ``scale`` and ``translate`` (napari layer attributes).
    """

    labels: np.ndarray
    probabilities: np.ndarray | None  # float32 (3, H, W) or (3, Z, H, W)
    scale_factor: float  # the image was resampled by this before the network
    diameter: float | None  # nucleus diameter used (given or estimated), image px
    scale: tuple[float, ...] | None = None
    translate: tuple[float, ...] | None = None
    watershed: dict[str, Any] = field(default_factory=dict)

    @property
    def n_instances(self) -> int:
        return int(self.labels.max()) if self.labels.size else 0

    def layer_attributes(self, name: str = "cells") -> dict[str, Any]:
        """napari ``Labels`` layer attributes (also what ``io.write_tiff_layer`` stores)."""
        attributes: dict[str, Any] = {"name": name}
        if self.scale is not None:
            attributes["scale"] = self.scale
        if self.translate is not None:
            attributes["translate"] = self.translate
        attributes["metadata"] = {
            "scale_factor": self.scale_factor,
            "diameter": self.diameter,
            "n_instances": self.n_instances,
            "watershed": self.watershed,
        }
        return attributes


def watershed_params(config, params=None):
    """``params``, else the model config's tuned ``watershed`` dict, else the defaults."""
    from .watershed import WatershedParams, as_watershed_params

    if params is not None:
        return as_watershed_params(params)
    stored = getattr(config, "watershed", None) or {}
    return WatershedParams.from_dict(stored) if stored else WatershedParams()


def label_dtype(n: int) -> np.dtype:
    return np.dtype(np.uint16) if n <= np.iinfo(np.uint16).max else np.dtype(np.uint32)


def iter_estimate_diameter(
    runner, config, image: Any, layout: ImageLayout, params=None,
    tile_size: int = DEFAULT_TILE_SIZE, overlap: int = DEFAULT_OVERLAP, percentiles: Any = None,
) -> Generator[PredictProgress, None, float | None]:  # fmt: skip
    """Median nucleus diameter (image px), measured by the network and the watershed.

    The first pass runs at the image's own scale on a central crop of the middle
    plane, ``ESTIMATE_CROPS[0]`` px square, and again on a larger one when the
    first holds fewer than ``ESTIMATE_MIN_NUCLEI`` nuclei (a sparse or mostly
    empty centre). It also runs on the image shrunk by ``ESTIMATE_COARSE_FACTORS``
    and keeps the measure whose interiors are surest (mean P(interior) where it
    is above 0.5): nuclei far larger than the model's come whole there, not as
    fragments. While the estimate is further than ``ESTIMATE_TOLERANCE`` from
    the diameter it was measured at, another pass measures it with the crop
    resampled to the model's scale by the estimate (``ESTIMATE_REFINE_PASSES`` at
    most). Returns None with fewer than 3 nuclei; the result is clipped so the
    scale factor stays within the allowed range. ``percentiles``: the middle plane's
    :func:`.tiled.plane_percentiles`, when the caller has them (else computed here).
    """
    plane = PlaneReader(image, layout, layout.n_planes // 2)
    if percentiles is None:
        percentiles = plane_percentiles(plane, config.normalization)
    params = watershed_params(config, params)
    model_diameter = config.object_diameter
    best = None  # (certainty, diameter, factor)
    for factor in (1.0, *(ESTIMATE_COARSE_FACTORS if model_diameter else ())):
        if factor < 0.5 and best is not None and best[2] == 1.0:
            break  # the own scale beat the image shrunk by 2: nuclei are not far larger (45 of 45 images)
        coarse = (
            {} if factor == 1.0 else {"crops": ESTIMATE_CROPS[:1], "min_nuclei": ESTIMATE_COARSE_MIN_NUCLEI}
        )
        measured, certainty = yield from _measure_diameter(
            runner, config, plane, percentiles, params, factor, tile_size, overlap, **coarse
        )
        if measured is not None and (best is None or certainty > best[0]):
            best = (certainty, measured, factor)
    if best is None or not model_diameter:
        return None if best is None else best[1]
    low, high = model_diameter / MAX_SCALE_FACTOR, model_diameter / MIN_SCALE_FACTOR
    diameter = float(np.clip(best[1], low, high))
    # a pass measures best the nuclei of the size it resampled to: model_diameter / factor
    measured_at = model_diameter / best[2]
    for _ in range(ESTIMATE_REFINE_PASSES):
        if max(diameter / measured_at, measured_at / diameter) < ESTIMATE_TOLERANCE:
            break
        factor = model_diameter / diameter
        refined, _ = yield from _measure_diameter(
            runner, config, plane, percentiles, params, factor, tile_size, overlap
        )
        if refined is None:
            break
        measured_at, diameter = diameter, float(np.clip(refined, low, high))
    return diameter


def _measure_diameter(
    runner, config, plane, percentiles, params, factor, tile_size, overlap, crops=ESTIMATE_CROPS,
    min_nuclei=3,
):  # fmt: skip
    """One pass of :func:`iter_estimate_diameter` with the image resampled by ``factor``:
    the median diameter (image px) of the nuclei found, or None with fewer than ``min_nuclei``,
    and how sure the network is of their interiors (mean P(interior) where above 0.5; 0 if none)."""
    from .watershed import instances_from_probabilities

    height, width = plane.shape
    for crop in crops:
        # the crop's size in network pixels stays the same at every factor
        ch, cw = min(height, round(crop / factor)), min(width, round(crop / factor))
        region = (slice((height - ch) // 2, (height - ch) // 2 + ch), slice((width - cw) // 2, (width - cw) // 2 + cw))  # fmt: skip
        gen = iter_predict_region(
            runner, plane, config.normalization, percentiles, factor, region, tile_size, overlap
        )
        while True:
            try:
                report = next(gen)
            except StopIteration as stop:
                probabilities = stop.value
                break
            yield PredictProgress("diameter", report.done, report.total)
        seen = 1.0
        if factor < 1.0:  # shrunk: the watershed at the network's pixels (4x fewer at 1/2)
            seen = factor
            probabilities = resize_channels_first(
                probabilities, (scaled_size(ch, factor), scaled_size(cw, factor))
            )
        labels = instances_from_probabilities(probabilities, params)
        whole = (ch, cw) == (height, width)
        if whole or crop == crops[-1] or int(labels.max()) >= ESTIMATE_MIN_NUCLEI:
            break
    interior = probabilities[INTERIOR][probabilities[INTERIOR] > 0.5]
    diameter = median_diameter(labels, min_nuclei)
    return (None if diameter is None else diameter / seen), float(interior.mean()) if interior.size else 0.0


def iter_segment_image(
    model,
    config,
    image: Any,
    params=None,
    *,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int | None = None,
    device: Any = None,
    diameter: float | None = None,
    channel: int | None = None,
    channel_axis: int | None = None,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
    keep_probabilities: bool = True,
    amp: bool = True,
    optimize: bool = False,
    tta: bool = False,
    tta_zooms: Sequence[float] | None = None,
    warn_small: bool = True,
    warn_unscaled: bool = True,
) -> Generator[PredictProgress, None, SegmentationResult]:
    """Generator version of :func:`segment_image`; returns the :class:`SegmentationResult`.

    ``warn_small=False``: no :class:`SmallImageWarning` (a caller that shows
    :func:`small_image_note` itself, as the Segment panel does); ``warn_unscaled=False``:
    no :class:`UnscaledWarning` (a caller that shows :func:`unscaled_note`, as the batch does).
    """
    from .watershed import instances_from_probabilities

    tile_size, overlap, batch_size = check_tiling(tile_size, overlap, batch_size)
    image = as_image_array(image)  # a nested list is read as an array, not as a shape-less object
    layout = describe_layout(image, channel, channel_axis)
    scale = spatial_metadata(scale, layout, "scale")
    translate = spatial_metadata(translate, layout, "translate")
    params = watershed_params(config, params)
    runner = make_runner(model, config, device, amp, optimize, tta, tta_zooms)
    unscaled = unscaled_note(config, diameter)
    diameter = None if unscaled else resolve_diameter(config, diameter)
    estimate = diameter == 0
    # the size estimate and the middle plane's pass normalise alike: one subsample, not two
    middle = layout.n_planes // 2
    known = {middle: plane_percentiles(PlaneReader(image, layout, middle), config.normalization)}
    if unscaled:  # said here in one line, not by iter_scale_factor
        factor = 1.0
        if warn_unscaled:
            warn_caller(unscaled, UnscaledWarning)
    else:
        factor = yield from iter_scale_factor(
            runner, config, image, layout, diameter, tile_size, overlap, params, known.get(middle)
        )
    if estimate:
        diameter = config.object_diameter / factor if factor != 1.0 else None
    if warn_small:
        _warn_if_small(layout, factor)
    n_planes = layout.n_planes
    # one plane: its labels and probabilities are the result as they come (no copies)
    labels = np.zeros(layout.labels_shape, np.uint32) if layout.stack else None
    probabilities = np.zeros((3, *layout.labels_shape), np.float32) if keep_probabilities and layout.stack else None  # fmt: skip
    offset = 0
    for index in range(n_planes):
        plane = PlaneReader(image, layout, index)
        percentiles = known.pop(index) if index in known else plane_percentiles(plane, config.normalization)
        gen = iter_predict_region(
            runner, plane, config.normalization, percentiles, factor,
            tile_size=tile_size, overlap=overlap, batch_size=batch_size,
        )  # fmt: skip
        plane_probabilities = yield from _with_plane(gen, index, n_planes)
        plane_labels = instances_from_probabilities(plane_probabilities, params)
        if not layout.stack:
            labels = plane_labels  # uint16, uint32 beyond 65535 instances: label_dtype's rule
            probabilities = plane_probabilities if keep_probabilities else None
        else:  # each plane's instances get ids after the previous plane's
            plane_labels = plane_labels.astype(np.uint32)
            plane_labels[plane_labels > 0] += offset
            offset = max(offset, int(plane_labels.max()))
            labels[index] = plane_labels
            if probabilities is not None:
                probabilities[:, index] = plane_probabilities
        yield PredictProgress("watershed", index + 1, n_planes, index, n_planes)
    return SegmentationResult(
        labels=labels.astype(label_dtype(offset), copy=False) if layout.stack else labels,
        probabilities=probabilities,
        scale_factor=float(factor),
        diameter=None if diameter is None else float(diameter),
        scale=scale,
        translate=translate,
        watershed=params.to_dict(),
    )


class SmallImageWarning(UserWarning):
    """The image is too small for the network to tell its background (see MIN_CONTEXT_PX)."""


def small_image_note(plane_shape: tuple[int, int], factor: float) -> str:
    """Why the cells of an image this small may be wrong, or "" (see :data:`MIN_CONTEXT_PX`)."""
    height, width = plane_shape
    if min(height, width) * factor >= MIN_CONTEXT_PX:
        return ""
    at_scale = f" ({height * factor:.0f} x {width * factor:.0f} at the model's scale)" if factor != 1 else ""
    return (
        f"the image is only {height} x {width} px{at_scale}: under {MIN_CONTEXT_PX} px a side the "
        "network sees too little around each pixel, and background can come out as cells; "
        "segment a larger region and crop its cells"
    )


class UnscaledWarning(UserWarning):
    """A nucleus diameter was asked for, but the model has no training scale to resample to."""


def unscaled_note(config, diameter: float | None) -> str:
    """Why ``diameter`` (None: the model's ``default_diameter``) cannot rescale an image, or "".

    The diameter only means something against the model's ``object_diameter``
    (the nucleus diameter it was trained at); without one the image is segmented
    at its own scale.
    """
    wanted = resolve_diameter(config, diameter)
    if wanted is None or getattr(config, "object_diameter", None) is not None:
        return ""
    given = "an estimated nucleus diameter" if wanted == 0 else f"a nucleus diameter of {wanted:g} px"
    source = " (its default_diameter)" if diameter is None else ""
    return (
        "the model's config.json has no object_diameter (the nucleus diameter it was trained at), so "
        f"the image cannot be resampled for {given}{source}: it is segmented at its own scale"
    )


def _warn_if_small(layout: ImageLayout, factor: float) -> None:
    note = small_image_note(layout.plane_shape, factor)
    if note:
        warn_caller(note, SmallImageWarning)


def segment_image(
    model,
    config,
    image: Any,
    params=None,
    *,
    callback: Callable[[PredictProgress], None] | None = None,
    **kwargs: Any,
) -> SegmentationResult:
    """Segment the nuclei of an image into instances.

    Parameters
    ----------
    model : torch.nn.Module
        The segmentation network (see :func:`.runtime.resolve_model`).
    config : ModelConfig
        Its config (normalisation, loss, object diameter, tuned watershed).
    image : array_like
        Grey, RGB, multichannel (with ``channel``) or a stack of planes;
        numpy, dask or zarr (see :mod:`.images`).
    params : WatershedParams or dict, optional
        Watershed parameters; default: the model's tuned ones.
    callback : callable, optional
        Called with each :class:`~.predict.PredictProgress`.
    **kwargs
        ``tile_size``, ``overlap``, ``batch_size``, ``device``, ``diameter``
        (0 = estimate), ``channel``, ``channel_axis``, ``scale``,
        ``translate``, ``keep_probabilities``, ``amp``, ``optimize``, ``tta``,
        ``tta_zooms``: see
        :func:`.predict.predict_probabilities`.

    Returns
    -------
    SegmentationResult
        uint16 labels (uint32 beyond 65535 instances), consecutive 1..N.
    """
    return run_to_end(iter_segment_image(model, config, image, params, **kwargs), callback)
