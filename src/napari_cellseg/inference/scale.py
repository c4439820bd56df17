"""Object scale: rescale images so nuclei have the diameter the model was trained on.

A model's config stores ``object_diameter``, the median nucleus diameter (in
pixels) of its training images. An image whose nuclei are ``diameter`` pixels
wide is resampled by ``scale_factor = object_diameter / diameter`` before the
network sees it, and the probabilities are resampled back, so labels always
come out at the image's own size. Other scanners and magnifications differ
mostly by this factor.
"""

from __future__ import annotations

import math

import numpy as np

# Factors outside this range are almost always a wrong diameter, not a real scanner.
MIN_SCALE_FACTOR = 0.125
MAX_SCALE_FACTOR = 8.0


def scale_factor(model_diameter: float | None, diameter: float | None) -> float:
    """Resampling factor that maps nuclei of ``diameter`` px to ``model_diameter`` px.

    Parameters
    ----------
    model_diameter : float or None
        Training scale of the model (``ModelConfig.object_diameter``).
    diameter : float or None
        Nucleus diameter in the image, in pixels.

    Returns
    -------
    float
        ``model_diameter / diameter``, or 1.0 when either is unknown (None).

    Raises
    ------
    ValueError
        If a diameter is not positive, or the factor falls outside
        [``MIN_SCALE_FACTOR``, ``MAX_SCALE_FACTOR``].
    """
    if model_diameter is None or diameter is None:
        return 1.0
    if not (model_diameter > 0 and diameter > 0):
        raise ValueError(
            f"diameters must be > 0, got model diameter {model_diameter} and image diameter {diameter}"
        )
    factor = float(model_diameter) / float(diameter)
    if not MIN_SCALE_FACTOR <= factor <= MAX_SCALE_FACTOR:
        raise ValueError(
            f"nucleus diameter {diameter} px against the model's {model_diameter} px gives a scale "
            f"factor of {factor:.3g}, outside [{MIN_SCALE_FACTOR}, {MAX_SCALE_FACTOR}]; "
            "check the diameter (it is in pixels)"
        )
    return factor


def scaled_size(size: int, factor: float) -> int:
    """Length of an axis of ``size`` pixels after resampling by ``factor`` (>= 1)."""
    return max(1, round(size * factor))


def resize_channels_last(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample a float32 ``(H, W)`` or ``(H, W, C)`` array to ``shape`` (H, W).

    Area averaging when shrinking (no aliasing), bilinear when enlarging.
    """
    import cv2

    height, width = int(shape[0]), int(shape[1])
    if array.shape[:2] == (height, width):
        return array
    shrinking = height * width < array.shape[0] * array.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    array = np.ascontiguousarray(array, dtype=np.float32)
    channels = array.shape[2] if array.ndim == 3 else 0
    if channels > 4:  # cv2 resizes at most 4 channels at once reliably
        return np.stack([resize_channels_last(array[..., c], shape) for c in range(channels)], axis=-1)
    out = cv2.resize(array, (width, height), interpolation=interpolation)
    if channels == 1:
        out = out[..., None]
    return out


def resize_channels_first(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample a float32 ``(C, H, W)`` array to ``(C, *shape)``."""
    if array.shape[1:] == tuple(shape):
        return array
    moved = np.moveaxis(array, 0, -1)
    return np.ascontiguousarray(np.moveaxis(resize_channels_last(moved, shape), -1, 0))


def equivalent_diameters(labels: np.ndarray) -> np.ndarray:
    """Diameter of the disc with each instance's area, ``sqrt(4 area / pi)``, in pixels.

    ``labels`` are instance labels: integers >= 0 of any size, 0 background (bool: one object).
    """
    from ..instance_matching import _LUT_LIMIT, check_labels

    flat = check_labels(labels).ravel()
    top = int(flat.max()) if flat.size else 0
    if top <= _LUT_LIMIT:
        areas = np.bincount(flat.astype(np.intp, copy=False))[1:]
    else:  # a cell numbered 2**40: areas by id would take terabytes
        values, counts = np.unique(flat, return_counts=True)
        areas = counts[values != 0]
    areas = areas[areas > 0]
    return np.sqrt(4.0 * areas / math.pi)


def median_diameter(labels: np.ndarray, min_instances: int = 3) -> float | None:
    """Median equivalent diameter of the instances, or None with fewer than ``min_instances``."""
    from ..data.arguments import check_integer

    min_instances = check_integer(min_instances, "min_instances", minimum=1)
    diameters = equivalent_diameters(labels)
    if diameters.size < min_instances:
        return None
    return float(np.median(diameters))
