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

import numpy as np
from scipy import ndimage as ndi

from ..classes import BACKGROUND, BOUNDARY, INTERIOR
from .reconstruct import reconstruct_by_dilation as _reconstruct_by_dilation
from .watershed_params import WatershedParams, as_watershed_params, check_probabilities

__all__ = [
    "WatershedParams",
    "as_watershed_params",
    "check_probabilities",
    "elevation_from_probabilities",
    "finalize_labels",
    "foreground_mask",
    "instances_from_probabilities",
    "markers_from_probabilities",
    "split_at_necks",
    "split_at_peaks",
    "unfiltered_instances",
    "watershed_from_markers",
]

_FULL = np.ones((3, 3), dtype=bool)


def foreground_mask(probabilities, params: WatershedParams | dict | None = None) -> np.ndarray:
    """Boolean ``(H, W)`` mask of pixels that belong to some cell."""
    return _foreground(check_probabilities(probabilities), as_watershed_params(params))


def _foreground(probabilities: np.ndarray, params: WatershedParams) -> np.ndarray:
    return probabilities[BACKGROUND] <= 1.0 - params.foreground_threshold


def markers_from_probabilities(
    probabilities, params: WatershedParams | dict | None = None, mask: np.ndarray | None = None
) -> np.ndarray:
    """int32 ``(H, W)`` markers: labelled components of confident interior.

    Parameters
    ----------
    probabilities : ndarray, shape (3, H, W)
        Class probabilities.
    params : WatershedParams or dict, optional
    mask : ndarray of bool, optional
        Foreground mask; computed from ``params`` when not given.
    """
    params = as_watershed_params(params)
    probabilities = check_probabilities(probabilities)
    if mask is None:
        mask = _foreground(probabilities, params)
    else:
        mask = _check_mask(mask, probabilities.shape[1:])
    return _markers(probabilities, params, mask)


def _check_mask(mask, shape: tuple[int, ...]) -> np.ndarray:
    """``mask`` as a bool array of ``shape``; integer masks count non-zero as True."""
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(f"mask shape {mask.shape} differs from the image's {tuple(shape)}")
    if mask.dtype.kind not in "biu":
        raise ValueError(f"mask must be a bool array, got dtype {mask.dtype}")
    return mask if mask.dtype == bool else mask != 0


def _check_components(components, name: str = "components") -> np.ndarray:
    """Labelled components as a 2D non-negative integer array that fits int32 (the markers' type)."""
    array = np.asarray(components)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{name} must be a non-empty 2D (H, W) array, got shape {array.shape}")
    if array.dtype == bool:
        return array.astype(np.int32)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be integer labels, got dtype {array.dtype}")
    low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
    if low < 0:
        raise ValueError(f"{name} must be >= 0 (0 = none), found {low}")
    if high > np.iinfo(np.int32).max:  # ids are int32 from here on: larger ones would wrap
        raise ValueError(f"{name} ids must be <= {np.iinfo(np.int32).max}, found {high}; relabel them 1..N")
    return array


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
    from ..data.arguments import check_number

    components = _check_components(components)
    relief = np.asarray(relief)
    if relief.shape != components.shape:
        raise ValueError(f"relief shape {relief.shape} differs from the components' {components.shape}")
    if relief.dtype.kind not in "biuf":
        raise ValueError(f"relief must be a real-valued array, got dtype {relief.dtype}")
    height = check_number(height, "height", minimum=0)
    return _h_maxima_markers(components, relief.astype(np.float32, copy=False), height, tolerance=1e-5)


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

    from ..data.arguments import check_number

    components = _check_components(components)
    height = check_number(height, "height", minimum=0)
    smoothing = check_number(smoothing, "smoothing", minimum=0)
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


def elevation_from_probabilities(probabilities, params: WatershedParams | dict | None = None) -> np.ndarray:
    """float32 ``(H, W)`` elevation: ``P(background) + boundary_weight * P(boundary)``."""
    return _elevation(check_probabilities(probabilities), as_watershed_params(params))


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
        scikit-image's compact watershed when > 0 (>= 0).
    keep_unmarked : bool
        Label each mask component that no marker reaches as a new instance.
    """
    from ..data.arguments import check_number

    elevation, markers, mask = np.asarray(elevation), np.asarray(markers), np.asarray(mask)
    if not (elevation.shape == markers.shape == mask.shape):
        raise ValueError(
            f"elevation, markers and mask must have one shape, got {elevation.shape}, "
            f"{markers.shape} and {mask.shape}"
        )
    if elevation.dtype.kind not in "biuf":
        raise ValueError(f"elevation must be a real-valued array, got dtype {elevation.dtype}")
    markers = _check_components(markers, "markers")
    mask = _check_mask(mask, markers.shape)
    compactness = check_number(compactness, "compactness", minimum=0)
    return _watershed(elevation, markers, mask, compactness, bool(keep_unmarked))


def _watershed(elevation, markers, mask, compactness: float, keep_unmarked: bool) -> np.ndarray:
    import cv2
    from skimage.segmentation import watershed

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
    """Remove objects below ``min_size`` pixels and relabel ``1..N`` (uint16, else uint32).

    Parameters
    ----------
    labels : array_like of int
        Instance labels, 0 background, ids >= 0 of any size (bool: one object).
    min_size : int
        Objects of fewer pixels are removed (>= 0).

    Returns
    -------
    ndarray
        Same shape, uint16 ``0..N`` (uint32 when ``N > 65535``).
    """
    from ..data.arguments import check_integer
    from ..instance_matching import check_labels

    labels = check_labels(labels)
    return _finalize(labels, check_integer(min_size, "min_size", minimum=0))


def _finalize(labels: np.ndarray, min_size: int) -> np.ndarray:
    from ..instance_matching import _LUT_LIMIT

    flat = labels.ravel()
    top = int(flat.max()) if flat.size else 0
    if top == 0:
        return np.zeros(labels.shape, dtype=np.uint16)
    if top <= _LUT_LIMIT:
        sizes = np.bincount(flat.astype(np.intp, copy=False))
        sizes[0] = 0
        index = labels
    else:  # ids as large as 2**40: sizes by id would take terabytes
        values, inverse, sizes = np.unique(flat, return_inverse=True, return_counts=True)
        sizes[values == 0] = 0
        index = inverse.reshape(labels.shape)
    keep = sizes >= max(min_size, 1)
    n = int(keep.sum())
    dtype = np.uint16 if n <= np.iinfo(np.uint16).max else np.uint32
    lut = np.zeros(sizes.size, dtype=dtype)
    lut[keep] = np.arange(1, n + 1, dtype=dtype)
    return lut[index]


def instances_from_probabilities(probabilities, params: WatershedParams | dict | None = None) -> np.ndarray:
    """Instance labels from class probabilities.

    Parameters
    ----------
    probabilities : ndarray, shape (3, H, W)
        Float class probabilities (background, boundary, interior).
    params : WatershedParams or dict, optional
        Defaults to ``WatershedParams()``; a dict sets the keys it has over the
        defaults. A model stores tuned ones in its config's ``watershed`` key.

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
    params = as_watershed_params(params)
    return _finalize(unfiltered_instances(probabilities, params), params.min_size)


def unfiltered_instances(probabilities, params: WatershedParams | dict | None = None) -> np.ndarray:
    """int32 labels of steps 1-4, before ``min_size`` filtering and renumbering.

    ``finalize_labels(unfiltered_instances(p, params), params.min_size)`` is
    :func:`instances_from_probabilities`; tuning reuses one result for every
    ``min_size``.
    """
    params = as_watershed_params(params)
    probabilities = check_probabilities(probabilities)
    mask = _foreground(probabilities, params)
    markers = _markers(probabilities, params, mask)
    elevation = _elevation(probabilities, params)
    return _watershed(elevation, markers, mask, params.compactness, params.keep_unmarked)
