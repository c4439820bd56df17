"""Instances from class probabilities: marker-controlled, boundary-weighted watershed.

Input is the ``(3, H, W)`` float probability map of the contract (background,
boundary, interior), or any 2D chunk of it. The steps, each a public function so
that block-wise processing can run them per chunk:

1. :func:`foreground_mask`: ``P(background) < 1 - foreground_threshold``;
2. :func:`markers_from_probabilities`: connected components (8-connected) of
   confident interior, ``P(interior) >= interior_threshold`` inside the mask,
   optionally after Gaussian smoothing, minus components below
   ``min_marker_size``; with ``peak_height > 0`` a component in which
   ``P(interior)`` has several peaks (rising ``peak_height`` above the saddle
   between them) gives one marker per peak; with ``split_height > 0`` a marker
   whose distance transform has several peaks (rising ``split_height`` pixels
   above the saddle) gives one marker per peak. Either way two touching
   nuclei whose confident interiors still touch get a marker each;
3. :func:`elevation_from_probabilities`:
   ``P(background) + boundary_weight * P(boundary)`` (with weight 1 this is
   ``1 - P(interior)``; larger weights make predicted boundaries steeper walls);
4. :func:`watershed_from_markers`: flood the elevation from the markers within
   the mask (scikit-image, optional compactness); foreground regions without
   any marker become instances of their own (small cells whose interior was
   never confident; an unmarked cell that touches a marked one is flooded
   by it);
5. :func:`finalize_labels`: drop instances below ``min_size`` and relabel
   ``1..N`` as uint16 (uint32 beyond 65535 instances).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..classes import BACKGROUND, BOUNDARY, INTERIOR
from ..config import JsonConfig

_FULL = np.ones((3, 3), dtype=bool)


@dataclass
class WatershedParams(JsonConfig):
    """Parameters of :func:`instances_from_probabilities`.

    Attributes
    ----------
    interior_threshold : float
        Marker pixels have ``P(interior) >= interior_threshold``. Higher
        separates touching cells better but loses faint cells.
    foreground_threshold : float
        Pixels with ``1 - P(background) >= foreground_threshold`` can be flooded.
    boundary_weight : float
        Weight of ``P(boundary)`` in the elevation, >= 0.
    min_size : int
        Instances smaller than this many pixels are removed.
    compactness : float
        scikit-image watershed compactness; 0 is the classic watershed, larger
        values give rounder regions. Compact watershed is slower.
    marker_smoothing : float
        Gaussian sigma (pixels) applied to ``P(interior)`` before thresholding;
        0 disables it. Smoothing removes speckle from noisy maps but also
        fills narrow gaps, so it can join the markers of touching cells.
    min_marker_size : int
        Marker components smaller than this many pixels are ignored.
    keep_unmarked : bool
        Foreground components without any marker become instances.
    split_height : float
        Cut marker components at necks: parts whose distance-transform peak
        rises this many pixels above the saddle to the next part become
        markers of their own. 0 disables it. Small values split more (and
        also cut elongated cells); about 0.5-1.5 px suits nuclei.
    peak_height : float
        Cut marker components where the (smoothed) interior probability dips:
        each peak of ``P(interior)`` that rises this much above the saddle to
        a higher peak becomes a marker of its own (the h-maxima), before
        ``split_height`` applies. 0 disables it; about 0.1-0.3 suits nuclei,
        with ``marker_smoothing`` about 1 px against pixel noise.
    """

    interior_threshold: float = 0.6
    foreground_threshold: float = 0.5
    boundary_weight: float = 1.0
    min_size: int = 16
    compactness: float = 0.0
    marker_smoothing: float = 0.0
    min_marker_size: int = 4
    keep_unmarked: bool = True
    split_height: float = 0.0
    peak_height: float = 0.0

    def __post_init__(self) -> None:
        for name in ("interior_threshold", "foreground_threshold"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"WatershedParams.{name} must be in (0, 1], got {value}")
        for name in ("boundary_weight", "compactness", "marker_smoothing", "split_height", "peak_height"):
            if getattr(self, name) < 0:
                raise ValueError(f"WatershedParams.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("min_size", "min_marker_size"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 0:
                raise ValueError(
                    f"WatershedParams.{name} must be a non-negative integer, got {getattr(self, name)}"
                )


def check_probabilities(probabilities, name: str = "probabilities") -> np.ndarray:
    """Return ``probabilities`` as a ``(3, H, W)`` float array, or raise ``ValueError``.

    Values are not required to sum to exactly 1 (blending and float16 storage
    perturb sums); only shape, dtype and finiteness are checked.
    """
    array = np.asarray(probabilities)
    if array.ndim != 3 or array.shape[0] != 3:
        raise ValueError(
            f"{name}: expected (3, H, W) class probabilities (background, boundary, "
            f"interior), got shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name}: expected float probabilities, got dtype {array.dtype}")
    if array.shape[1] == 0 or array.shape[2] == 0:
        raise ValueError(f"{name}: empty image, shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values (shape {array.shape})")
    return array


def foreground_mask(probabilities, params: WatershedParams | None = None) -> np.ndarray:
    """Boolean ``(H, W)`` mask of pixels that belong to some cell."""
    return _foreground(check_probabilities(probabilities), params or WatershedParams())


def _foreground(probabilities: np.ndarray, params: WatershedParams) -> np.ndarray:
    return probabilities[BACKGROUND] <= 1.0 - params.foreground_threshold


def markers_from_probabilities(
    probabilities, params: WatershedParams | None = None, mask: np.ndarray | None = None
) -> np.ndarray:
    """int32 ``(H, W)`` markers: labelled components of confident interior.

    Parameters
    ----------
    probabilities : ndarray, shape (3, H, W)
        Class probabilities.
    params : WatershedParams, optional
    mask : ndarray of bool, optional
        Foreground mask; computed from ``params`` when not given.
    """
    params = params or WatershedParams()
    probabilities = check_probabilities(probabilities)
    if mask is None:
        mask = _foreground(probabilities, params)
    elif mask.shape != probabilities.shape[1:]:
        raise ValueError(f"mask shape {mask.shape} differs from the image's {probabilities.shape[1:]}")
    return _markers(probabilities, params, mask)


def _markers(probabilities: np.ndarray, params: WatershedParams, mask: np.ndarray) -> np.ndarray:
    interior = probabilities[INTERIOR]
    if params.marker_smoothing > 0:
        interior = ndi.gaussian_filter(interior.astype(np.float32), params.marker_smoothing)
    markers, count = ndi.label((interior >= params.interior_threshold) & mask, structure=_FULL)
    if params.min_marker_size > 1 and count:
        sizes = np.bincount(markers.ravel())
        small = sizes < params.min_marker_size
        small[0] = False
        if small.any():
            markers[small[markers]] = 0
    if params.peak_height > 0 and count:
        markers = split_at_peaks(markers, interior, params.peak_height)
    if params.split_height > 0 and count:
        markers = split_at_necks(markers, params.split_height)
    return markers


def split_at_peaks(components: np.ndarray, relief: np.ndarray, height: float) -> np.ndarray:
    """int32 markers: one per peak of ``relief`` in each labelled component.

    A peak is a plateau of ``relief`` (e.g. ``P(interior)``) that rises at least
    ``height`` above the saddle to any higher peak of its component, and above
    the component's outside (the h-maxima of ``relief`` restricted to the
    components). A component without such a peak stays one marker.
    """
    components = np.asarray(components)
    if relief.shape != components.shape:
        raise ValueError(f"relief shape {relief.shape} differs from the components' {components.shape}")
    return _h_maxima_markers(components, np.asarray(relief, dtype=np.float32), height, tolerance=1e-5)


def split_at_necks(components: np.ndarray, height: float, smoothing: float = 1.0) -> np.ndarray:
    """int32 markers: one per distance-transform peak of each labelled component.

    The peaks of the components' distance transform (Gaussian-smoothed by
    ``smoothing`` px against pixel noise) that rise at least ``height`` pixels
    above the saddle to a higher peak (the h-maxima) become markers; a
    component without such a peak stays one marker. The watershed then floods
    the probability elevation from them, so the predicted boundary decides
    where cells part.
    """
    import cv2

    components = np.asarray(components)
    core = components > 0
    distance = cv2.distanceTransform(core.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    if smoothing > 0:
        distance = ndi.gaussian_filter(distance, smoothing)
    return _h_maxima_markers(components, distance, height, tolerance=1e-3)


def _h_maxima_markers(
    components: np.ndarray, relief: np.ndarray, height: float, tolerance: float
) -> np.ndarray:
    """One marker per h-maximum of ``relief`` inside the components; unseeded components stay whole."""
    from skimage.morphology import local_maxima

    core = components > 0
    relief = np.where(core, relief, np.float32(0))
    # h-maxima: where the relief stands ``height`` above its reconstruction from relief - height.
    # Outside the components the relief starts at its final value (0), so only they need steps.
    seed = np.where(core, relief - np.float32(height), np.float32(0))
    reconstruction = _reconstruct_by_dilation(seed, relief)
    peaks = (relief - reconstruction >= np.float32(height - tolerance)) & core
    # Tops of one h-maximum share a regional maximum of the reconstruction: number them by it,
    # or two tops within the tolerance (probabilities saturated at 1 around a shallow dip) would
    # cut one nucleus in two, and rounding the probabilities (fp16, AMP) would change the cells.
    plateaus = local_maxima(reconstruction, connectivity=2, allow_borders=True) & core
    numbers, count = ndi.label(plateaus, structure=_FULL)
    markers = np.where(peaks, numbers, 0)
    has_peak = np.zeros(int(components.max()) + 1, bool)
    has_peak[components[markers > 0]] = True
    unseeded = core & ~has_peak[components]
    markers[unseeded] = components[unseeded] + count
    return markers.astype(np.int32, copy=False)


def _reconstruct_by_dilation(seed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Grey-level reconstruction of ``seed`` under ``mask`` (float32), by repeated 3x3 dilation.

    It converges in as many steps as the longest path a value must travel,
    about a nucleus diameter here: much faster than a priority queue.
    """
    import cv2

    kernel = np.ones((3, 3), np.uint8)
    current = np.minimum(seed, mask)
    while True:
        grown = np.minimum(cv2.dilate(current, kernel), mask)
        if np.array_equal(grown, current):
            return grown
        current = grown


def elevation_from_probabilities(probabilities, params: WatershedParams | None = None) -> np.ndarray:
    """float32 ``(H, W)`` elevation: ``P(background) + boundary_weight * P(boundary)``."""
    return _elevation(check_probabilities(probabilities), params or WatershedParams())


def _elevation(probabilities: np.ndarray, params: WatershedParams) -> np.ndarray:
    elevation = probabilities[BOUNDARY].astype(np.float32) * np.float32(params.boundary_weight)
    elevation += probabilities[BACKGROUND]
    return elevation


def watershed_from_markers(
    elevation: np.ndarray,
    markers: np.ndarray,
    mask: np.ndarray,
    *,
    compactness: float = 0.0,
    keep_unmarked: bool = True,
) -> np.ndarray:
    """Flood ``elevation`` from ``markers`` inside ``mask``; returns int32 labels (not consecutive).

    Parameters
    ----------
    elevation : ndarray, shape (H, W)
        Lower is flooded first.
    markers : ndarray of int, shape (H, W)
        Seeds, 0 elsewhere (labels need not be consecutive).
    mask : ndarray of bool, shape (H, W)
        Pixels that may be flooded.
    compactness : float
        scikit-image's compact watershed when > 0.
    keep_unmarked : bool
        Label each mask component that no marker reaches as a new instance.
    """
    import cv2
    from skimage.segmentation import watershed

    if not (elevation.shape == markers.shape == mask.shape):
        raise ValueError(
            f"elevation, markers and mask must have one shape, got {elevation.shape}, "
            f"{markers.shape} and {mask.shape}"
        )
    markers = np.asarray(markers, dtype=np.int32)
    # Speed: seed only the marker pixels that have a non-marker neighbour. The
    # others (all 8 neighbours are marker pixels) can never flood anything, and
    # scikit-image would otherwise push every one of them on its heap.
    inside = cv2.erode((markers > 0).view(np.uint8), _FULL.view(np.uint8)).view(bool)
    seeds = np.where(inside, 0, markers)
    labels = watershed(elevation, seeds, mask=mask & ~inside, compactness=compactness)
    labels[inside] = markers[inside]
    if keep_unmarked:
        orphans, count = ndi.label(mask & (labels == 0), structure=_FULL)
        if count:
            start = int(markers.max()) if markers.size else 0
            labels[orphans > 0] = orphans[orphans > 0] + start
    return labels


def finalize_labels(labels: np.ndarray, min_size: int = 0) -> np.ndarray:
    """Remove objects below ``min_size`` pixels and relabel ``1..N`` (uint16, else uint32)."""
    labels = np.asarray(labels)
    flat = labels.ravel()
    if flat.size == 0 or flat.max() == 0:
        return np.zeros(labels.shape, dtype=np.uint16)
    sizes = np.bincount(flat)
    keep = sizes >= max(int(min_size), 1)
    keep[0] = False
    n = int(keep.sum())
    dtype = np.uint16 if n <= np.iinfo(np.uint16).max else np.uint32
    lut = np.zeros(sizes.size, dtype=dtype)
    lut[keep] = np.arange(1, n + 1, dtype=dtype)
    return lut[labels]


def instances_from_probabilities(probabilities, params: WatershedParams | None = None) -> np.ndarray:
    """Instance labels from class probabilities.

    Parameters
    ----------
    probabilities : ndarray, shape (3, H, W)
        Float class probabilities (background, boundary, interior).
    params : WatershedParams, optional
        Defaults to ``WatershedParams()``; a model stores tuned ones in its
        config's ``watershed`` key.

    Returns
    -------
    ndarray, shape (H, W)
        uint16 labels ``0..N`` (uint32 when ``N > 65535``), 0 background.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.zeros((3, 8, 8), np.float32); p[0] = 1
    >>> p[:, 2:6, 2:6] = np.array([0, 0, 1], np.float32)[:, None, None]
    >>> instances_from_probabilities(p, WatershedParams(min_size=1)).max()
    np.uint16(1)
    """
    params = params or WatershedParams()
    return finalize_labels(unfiltered_instances(probabilities, params), params.min_size)


def unfiltered_instances(probabilities, params: WatershedParams | None = None) -> np.ndarray:
    """int32 labels of steps 1-4, before ``min_size`` filtering and renumbering.

    ``finalize_labels(unfiltered_instances(p, params), params.min_size)`` is
    :func:`instances_from_probabilities`; tuning reuses one result for every
    ``min_size``.
    """
    params = params or WatershedParams()
    probabilities = check_probabilities(probabilities)
    mask = _foreground(probabilities, params)
    markers = _markers(probabilities, params, mask)
    elevation = _elevation(probabilities, params)
    return watershed_from_markers(
        elevation, markers, mask, compactness=params.compactness, keep_unmarked=params.keep_unmarked
    )
