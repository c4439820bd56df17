"""Parameters of the watershed (:class:`WatershedParams`) and the check of its input probabilities.

Split from :mod:`.watershed`, which re-exports both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..config import JsonConfig, check_value

# How far outside [0, 1] a probability may stray: float16 storage and resampling round.
RANGE_TOLERANCE = 1e-3


@dataclass
class WatershedParams(JsonConfig):
    """Parameters of :func:`instances_from_probabilities`.

    Every value is checked when set, at construction, by ``dataclasses.replace``
    or by assignment: a ``ValueError`` names the setting (NaN, inf, a bool for
    a number, a threshold outside ``(0, 1]``, a negative size).

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

    def __setattr__(self, name: str, value) -> None:
        # Checked on every assignment (construction, replace(), p.x = ...): a setting
        # changed after construction cannot slip past the checks.
        if name in _FIELD_TYPES:
            value = _checked(name, value)
        super().__setattr__(name, value)


_FIELD_TYPES = {"min_size": int, "min_marker_size": int, "keep_unmarked": bool}
_FIELD_TYPES.update(
    dict.fromkeys(
        ("interior_threshold", "foreground_threshold", "boundary_weight", "compactness",
         "marker_smoothing", "split_height", "peak_height"),
        float,
    )
)  # fmt: skip


def _checked(name: str, value):
    """``value`` of field ``name`` converted to its type, or a ``ValueError`` naming the field."""
    where = f"WatershedParams.{name}"
    value = check_value(_FIELD_TYPES[name], value, where)  # refuses True for a number, "no" for a bool
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value}")
    if name in ("interior_threshold", "foreground_threshold"):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"{where} must be in (0, 1], got {value}")
    elif not isinstance(value, bool) and value < 0:
        raise ValueError(f"{where} must be >= 0, got {value}")
    return value


def as_watershed_params(params) -> WatershedParams:
    """``params`` as :class:`WatershedParams`: None gives the defaults, a dict its keys over them.

    Raises
    ------
    TypeError
        If ``params`` is neither (a string, a number).
    ValueError
        If a dict has an unknown key or a bad value.
    """
    if params is None:
        return WatershedParams()
    if isinstance(params, WatershedParams):
        return params
    if isinstance(params, Mapping):
        return WatershedParams.from_dict(dict(params))
    raise TypeError(
        f"params must be WatershedParams, a dict of its settings or None, got {type(params).__name__} {params!r:.80}"
    )


def check_probabilities(probabilities, name: str = "probabilities") -> np.ndarray:
    """Return ``probabilities`` as a ``(3, H, W)`` float array, or raise ``ValueError``.

    Values are not required to sum to exactly 1 (blending and float16 storage
    perturb sums); shape, dtype, finiteness and the range ``[0, 1]`` (within
    :data:`RANGE_TOLERANCE`) are checked: a map scaled to 0..255, or logits,
    would pass every threshold test the wrong way and give no cell.
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
    # Two reductions: a NaN or inf shows in the min or the max, so no separate isfinite pass.
    low, high = float(array.min()), float(array.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name}: contains NaN or infinite values (shape {array.shape})")
    if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
        raise ValueError(
            f"{name}: values must lie in [0, 1], found {low:.4g}..{high:.4g}; "
            "divide a 0..255 map by 255, or apply softmax to logits"
        )
    return array
