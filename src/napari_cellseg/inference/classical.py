"""The classical baseline: Otsu threshold + distance-transform watershed.

The standard scikit-image recipe, used as the no-learning baseline in the
benchmarks and the model card:

1. grey image (RGB averaged with luminance weights), lightly smoothed;
2. Otsu threshold; which side is the nuclei is decided automatically: the
   side that holds the minority of the pixels is foreground (nuclei cover
   less than half of most fields: bright nuclei on dark fluorescence
   background, dark nuclei on bright histology/brightfield background);
3. holes filled, specks removed;
4. markers at the maxima of the smoothed distance transform (at least
   ``min_distance`` apart), watershed of the negated distance inside the mask.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .watershed import _finalize


def _grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype.kind not in "biuf":
        raise ValueError(f"classical_segmentation expects a numeric image, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        rgb = image[..., :3].astype(np.float32)
        return rgb @ np.array([0.2125, 0.7154, 0.0721], np.float32)
    if image.ndim != 2:
        raise ValueError(
            f"classical_segmentation expects an (H, W) grey or (H, W, 3) RGB image, got shape {image.shape}"
        )
    return image.astype(np.float32)


def foreground_is_bright(grey: np.ndarray, threshold: float) -> bool:
    """Whether the nuclei are the bright side of ``threshold`` (the minority side)."""
    return bool(np.mean(grey > threshold) <= 0.5)


def classical_segmentation(
    image,
    *,
    smoothing: float = 1.0,
    min_distance: int = 4,
    min_size: int = 16,
    bright_foreground: bool | None = None,
) -> np.ndarray:
    """Segment nuclei without learning: Otsu + distance-transform watershed.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` grey or ``(H, W, 3)`` RGB, any numeric dtype.
    smoothing : float
        Gaussian sigma (pixels) before thresholding and of the distance map; >= 0.
    min_distance : int
        Minimum distance (pixels) between two nuclei centres; >= 1.
    min_size : int
        Objects smaller than this many pixels are removed; >= 0.
    bright_foreground : bool, optional
        Force the polarity (True: bright nuclei); by default the minority side
        of the Otsu threshold is taken as nuclei.

    Returns
    -------
    ndarray
        uint16 instance labels ``0..N`` (uint32 beyond 65535).
    """
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    from ..data.arguments import check_integer, check_number

    smoothing = check_number(smoothing, "smoothing", minimum=0)
    min_distance = check_integer(min_distance, "min_distance", minimum=1)
    min_size = check_integer(min_size, "min_size", minimum=0)
    if bright_foreground is not None and not isinstance(bright_foreground, (bool, np.bool_)):
        raise TypeError(f"bright_foreground must be True, False or None, got {bright_foreground!r}")
    grey = _grey(image)
    if grey.size == 0:
        raise ValueError(f"classical_segmentation: empty image, shape {np.shape(image)}")
    finite = np.isfinite(grey)
    if not finite.all():
        if not finite.any():
            return np.zeros(grey.shape, np.uint16)
        # As the network's normalisation does: NaN and -inf are the darkest pixel, +inf the brightest.
        values = grey[finite]
        low, high = float(values.min()), float(values.max())
        grey = np.nan_to_num(grey, nan=low, posinf=high, neginf=low)
    if smoothing > 0:
        grey = ndi.gaussian_filter(grey, smoothing)
    if float(grey.min()) == float(grey.max()):
        return np.zeros(grey.shape, np.uint16)
    threshold = threshold_otsu(grey)
    bright = foreground_is_bright(grey, threshold) if bright_foreground is None else bright_foreground
    mask = grey > threshold if bright else grey <= threshold
    mask = ndi.binary_fill_holes(ndi.binary_opening(mask, iterations=1))
    distance = ndi.distance_transform_edt(mask)
    if smoothing > 0:
        distance = ndi.gaussian_filter(distance, smoothing)
    components, _ = ndi.label(mask)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=components, exclude_border=False)
    markers = np.zeros(grey.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-distance, markers, mask=mask)
    return _finalize(labels, min_size)
