"""The one rule that turns a microscope image into the network's input.

The rule (training and inference alike; stored in the model's ``config.json``)
-----------------------------------------------------------------------------
1. **Channels.** Grey ``(H, W)`` or ``(H, W, 1)`` stays one channel; RGB
   ``(H, W, 3)`` stays three; RGBA ``(H, W, 4)`` drops alpha. Any integer or
   float dtype (8-bit, 16-bit...). Grey becomes three identical channels only
   at the end (step 4).
2. **Percentiles of the whole image.** ``low`` and ``high`` are the
   ``low_percentile`` and ``high_percentile`` (default 1 and 99.8) of the
   whole image, jointly over its channels (default, keeps the stain's hue) or
   per channel (``per_channel=True``, also evens out colour casts). Images
   larger than ``max_samples`` pixels are subsampled on a regular strided grid,
   so a 10000 x 10000 dask or zarr array is never loaded whole. Tiled
   inference passes these whole-image percentiles to every tile: never
   per-tile percentiles, which would make each tile's contrast different.
3. **Scaling.** ``x = (pixel - low) / (high - low)`` in float32, then clipped
   to ``[0, 1]`` (``clip=True``, so outliers above the high percentile, such
   as one very bright nucleus, cannot blow up the input). Where
   ``high == low`` (a constant image or channel) the divisor is 1, so a
   constant image maps to 0 without dividing by zero. NaNs map to 0.
4. **Network statistics.** ``(x - mean) / std`` per channel with M2's input
   statistics (mean = std = 0.5 for the default EfficientNet-Lite0, so
   ``[0, 1]`` maps to ``[-1, 1]``), giving ``float32 (3, H, W)``.

Training augments between steps 3 and 4 (:func:`scale_intensity` then
:mod:`~napari_cellseg.data.augment` then :func:`standardize`), because
photometric and stain jitter are defined on intensities in ``[0, 1]``;
:func:`normalize_image` is steps 1-4 in one call.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import ConfigError, JsonConfig

__all__ = [
    "NormalizationConfig",
    "compute_percentiles",
    "normalize_image",
    "scale_intensity",
    "standardize",
    "subsample_stride",
]


@dataclass
class NormalizationConfig(JsonConfig):
    """Parameters of the normalisation rule (see the module docstring).

    Attributes
    ----------
    low_percentile, high_percentile : float
        Percentiles (0-100) mapped to 0 and 1.
    per_channel : bool
        Percentiles per channel instead of jointly over all channels.
    clip : bool
        Clip the scaled intensities to ``[0, 1]``.
    mean, std : tuple of 3 floats
        Input statistics of the network (read from M2's checkpoint).
    max_samples : int
        Pixels used for the percentiles; larger images use a strided subsample.
    """

    low_percentile: float = 1.0
    high_percentile: float = 99.8
    per_channel: bool = False
    clip: bool = True
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    max_samples: int = 1_000_000

    def __post_init__(self) -> None:
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise ConfigError(
                "need 0 <= low_percentile < high_percentile <= 100, got "
                f"{self.low_percentile} and {self.high_percentile}"
            )
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ConfigError(f"mean and std need 3 values, got {self.mean} and {self.std}")
        if not all(math.isfinite(v) for v in (*self.mean, *self.std)):  # else every pixel is NaN
            raise ConfigError(f"mean and std must be finite, got {self.mean} and {self.std}")
        if not all(s > 0 for s in self.std):
            raise ConfigError(f"std must be positive, got {self.std}")
        if int(self.max_samples) < 1024:
            raise ConfigError(f"max_samples must be >= 1024, got {self.max_samples}")

    @classmethod
    def from_pretrained_cfg(cls, pretrained_cfg: dict[str, Any], **overrides: Any) -> NormalizationConfig:
        """Take ``mean``/``std`` from a timm ``pretrained_cfg`` (or any dict with them)."""
        stats = {k: tuple(pretrained_cfg[k]) for k in ("mean", "std") if k in pretrained_cfg}
        return cls(**{**stats, **overrides})


def _as_channels_last(image: Any, name: str = "image") -> Any:
    """Check the layout and drop alpha; works on numpy, dask and zarr arrays."""
    if not hasattr(image, "shape") or not hasattr(image, "dtype"):
        image = np.asarray(image)
    shape, dtype = tuple(image.shape), np.dtype(image.dtype)
    if len(shape) == 3 and shape[-1] == 4:
        image = image[..., :3]
    elif len(shape) == 3 and shape[-1] == 1:
        image = image[..., 0]
    elif not (len(shape) == 2 or (len(shape) == 3 and shape[-1] == 3)):
        raise ValueError(
            f"{name} must be grey (H, W) or (H, W, 1), RGB (H, W, 3) or RGBA (H, W, 4); got shape {shape}"
        )
    if dtype.kind not in "uifb":
        raise ValueError(f"{name} must hold numbers, got dtype {dtype} with shape {shape}")
    if 0 in shape:
        raise ValueError(f"{name} is empty (shape {shape})")
    return image


def subsample_stride(shape: tuple[int, ...], max_samples: int) -> int:
    """Stride of the regular grid :func:`compute_percentiles` reads: ``image[::s, ::s]``.

    The smallest ``s`` with ``ceil(H / s) * ceil(W / s)`` about ``max_samples``
    or fewer pixels (``s = ceil(sqrt(H * W / max_samples))``).
    """
    h, w = shape[:2]
    return max(1, math.ceil(math.sqrt(h * w / max_samples)))


def _subsample(image: Any, max_samples: int) -> np.ndarray:
    """A regular strided subsample of at most about ``max_samples`` pixels, as numpy."""
    step = subsample_stride(image.shape, max_samples)
    sample = image[::step, ::step] if step > 1 else image
    if hasattr(sample, "compute"):  # dask
        sample = sample.compute()
    return np.asarray(sample)


def compute_percentiles(
    image: Any, config: NormalizationConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Low and high percentiles of a whole image (subsampled when large).

    Parameters
    ----------
    image : array-like (numpy, dask or zarr), grey (H, W) or RGB(A) (H, W, 3|4)
        The whole image, of any size and dtype.
    config : NormalizationConfig, optional
        Percentiles, joint or per channel, and ``max_samples``.

    Returns
    -------
    low, high : float64 arrays of shape (C,)
        One value per channel (``C`` is 1 for grey, 3 for colour); joint
        percentiles repeat the same value.
    """
    config = config or NormalizationConfig()
    image = _as_channels_last(image)
    sample = _subsample(image, config.max_samples).astype(np.float32, copy=False)
    n_channels = 1 if sample.ndim == 2 else sample.shape[-1]
    pixels = sample.reshape(-1, n_channels)
    quantiles = [config.low_percentile, config.high_percentile]
    # nanpercentile is much slower: use it only where there are NaNs.
    percentile = np.nanpercentile if np.isnan(pixels).any() else np.percentile
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": such a channel is 0 below
        if config.per_channel:
            values = percentile(pixels, quantiles, axis=0)
        else:
            values = np.repeat(percentile(pixels, quantiles)[:, None], n_channels, axis=1)
    values = np.nan_to_num(values.astype(np.float64))  # an all-NaN image: 0 and 0
    return values[0], values[1]


def scale_intensity(
    image: Any,
    config: NormalizationConfig | None = None,
    percentiles: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Steps 1-3 of the rule: percentile scaling to float32 (clipped to [0, 1]).

    Parameters
    ----------
    image : array-like, grey (H, W) or RGB(A) (H, W, 3|4)
        The image, or one tile of it.
    config : NormalizationConfig, optional
    percentiles : (low, high), optional
        From :func:`compute_percentiles` on the *whole* image; required for
        tiles. Computed from ``image`` when omitted.

    Returns
    -------
    float32 array, (H, W) for grey or (H, W, 3) for colour
    """
    config = config or NormalizationConfig()
    image = _as_channels_last(image)
    if percentiles is None:
        percentiles = compute_percentiles(image, config)
    pixels = np.asarray(image)
    n_channels = 1 if pixels.ndim == 2 else 3
    low, high = (np.asarray(v, dtype=np.float64).reshape(-1) for v in percentiles)
    if low.size not in (1, n_channels) or high.size not in (1, n_channels):
        raise ValueError(
            f"percentiles need 1 or {n_channels} values for an image of shape {pixels.shape}, "
            f"got low {low.shape} and high {high.shape}"
        )
    if not (np.isfinite(low).all() and np.isfinite(high).all()) or (low > high).any():
        # (255, 0) would invert the image silently.
        raise ValueError(f"percentiles must be finite with low <= high, got low {low} and high {high}")
    span = high - low
    span = np.where(span > 0, span, 1.0)
    if pixels.ndim == 2:
        low, span = low[0], span[0]
    scale = (1.0 / span).astype(np.float32)
    out = pixels.astype(np.float32)
    out -= np.asarray(low, dtype=np.float32)
    out *= scale
    if pixels.dtype.kind == "f" and np.isnan(out).any():
        np.nan_to_num(out, copy=False, nan=0.0)
    if config.clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out


def standardize(scaled: np.ndarray, config: NormalizationConfig | None = None) -> np.ndarray:
    """Step 4 of the rule: ``(x - mean) / std`` into the network's ``float32 (3, H, W)``.

    Parameters
    ----------
    scaled : (H, W) or (H, W, 3) float array
        Output of :func:`scale_intensity` (possibly augmented).
    config : NormalizationConfig, optional

    Returns
    -------
    float32 array of shape (3, H, W), C-contiguous
    """
    config = config or NormalizationConfig()
    scaled = np.asarray(scaled)
    if not (scaled.ndim == 2 or (scaled.ndim == 3 and scaled.shape[-1] == 3)):
        raise ValueError(f"expected a scaled (H, W) or (H, W, 3) image, got shape {scaled.shape}")
    mean = np.asarray(config.mean, dtype=np.float32)[:, None, None]
    inv_std = (1.0 / np.asarray(config.std, dtype=np.float64)).astype(np.float32)[:, None, None]
    planes = scaled[None] if scaled.ndim == 2 else np.moveaxis(scaled, -1, 0)
    out = np.empty((3, *scaled.shape[:2]), dtype=np.float32)
    np.subtract(planes, mean, out=out)  # broadcasts grey to 3 identical channels
    out *= inv_std
    return out


def normalize_image(
    image: Any,
    config: NormalizationConfig | None = None,
    percentiles: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Turn a grey, RGB(A), 8- or 16-bit image into the network's input.

    Applies the whole rule of this module (see its docstring): whole-image
    percentile scaling to ``[0, 1]``, then the network's mean and std.

    Parameters
    ----------
    image : array-like (numpy, dask or zarr), grey (H, W) or RGB(A) (H, W, 3|4)
        The image, or a tile of it (then pass the whole image's ``percentiles``).
    config : NormalizationConfig, optional
        The rule's parameters, as stored with the model.
    percentiles : (low, high), optional
        From :func:`compute_percentiles` on the whole image.

    Returns
    -------
    float32 array of shape (3, H, W)
        Grey images give three identical channels.

    Examples
    --------
    >>> import numpy as np
    >>> x = normalize_image(np.arange(100, dtype=np.uint16).reshape(10, 10))
    >>> x.shape, x.dtype, float(x.min()), float(x.max())
    ((3, 10, 10), dtype('float32'), -1.0, 1.0)
    """
    config = config or NormalizationConfig()
    return standardize(scale_intensity(image, config, percentiles), config)
