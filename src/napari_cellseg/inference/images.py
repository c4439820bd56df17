"""How an input image is laid out: planes, channels, RGB, and lazy window reads.

Prediction reads an image window by window, so numpy, dask and zarr arrays of
any size are accepted and never loaded whole. The layout rules:

- ``(H, W)``: one grey plane.
- A last axis of size 1 to 4 is the channel axis (grey, -, RGB, RGBA), unless
  ``channel_axis`` says otherwise. Three channels are used as RGB, four as RGB
  (alpha dropped); any other count needs ``channel``. A last axis of 5 to 16
  that is under a quarter of the two axes before it is a channel axis too.
- ``channel`` picks one channel as a grey image. On a 3D image without a
  detected channel axis, ``channel`` refers to axis 0 (``(C, H, W)``).
- The remaining axes are ``(H, W)`` (one plane) or ``(Z, H, W)`` (a stack of 2D
  planes, segmented plane by plane).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ImageLayout:
    """Where the planes and channels of an image are."""

    shape: tuple[int, ...]
    channel_axis: int | None  # axis of the input holding channels, if any
    channel: int | None  # the channel used as grey, or None (grey or RGB as is)
    rgb: bool  # planes are (H, W, 3)
    stack: bool  # the image is a stack of planes along its first spatial axis

    @property
    def spatial_axes(self) -> tuple[int, ...]:
        return tuple(a for a in range(len(self.shape)) if a != self.channel_axis)

    @property
    def n_planes(self) -> int:
        return self.shape[self.spatial_axes[0]] if self.stack else 1

    @property
    def plane_shape(self) -> tuple[int, int]:
        axes = self.spatial_axes
        return self.shape[axes[-2]], self.shape[axes[-1]]

    @property
    def labels_shape(self) -> tuple[int, ...]:
        """Shape of the labels (and of each class's probabilities): the spatial axes."""
        return tuple(self.shape[a] for a in self.spatial_axes)


def as_image_array(image: Any, name: str = "image") -> Any:
    """``image`` itself if it is an array (numpy, dask, zarr: read lazily), else ``np.asarray(image)``.

    Raises
    ------
    TypeError
        If ``image`` holds no pixels: a file path, None, a single number.
    ValueError
        If it is a list of images of different shapes (a list is read as one stack).
    """
    if all(hasattr(image, attr) for attr in ("shape", "dtype", "__getitem__")):
        return image
    if isinstance(image, (str, os.PathLike)):
        raise TypeError(
            f"{name} must be an array of pixels, got the path {os.fspath(image)!r}: "
            "read the file first, e.g. napari_cellseg.io.read_image(path)"
        )
    try:
        array = np.asarray(image)  # nested lists, as the docstrings' array_like promises
    except ValueError:  # numpy refuses ragged lists
        shapes = list(dict.fromkeys(_item_shape(item) for item in image))
        listed = ", ".join(shapes[:4]) + (", ..." if len(shapes) > 4 else "")
        raise ValueError(
            f"{name}: a list of images is read as one (Z, H, W) stack, but its images have "
            f"different shapes ({listed}): segment each image on its own"
        ) from None
    if array.ndim == 0:
        raise TypeError(
            f"{name} must be an array of pixels (numpy, dask or zarr), got {type(image).__name__} {image!r}"
        )
    return array


def _item_shape(item: Any) -> str:
    try:
        return str(np.shape(item))
    except ValueError:  # itself ragged
        return "a ragged list"


class ChannelsError(ValueError):
    """An image of several channels and no choice of one. ``reason`` says so without the
    API and CLI advice, for the GUI to add its own (the panels have no channel setting)."""

    def __init__(self, reason: str):
        super().__init__(f"{reason}: choose one with channel=N (--channel N)")
        self.reason = reason

    def __reduce__(self):  # pickled (Dask) with its reason, not the whole message
        return type(self), (self.reason,)


def describe_layout(image: Any, channel: int | None = None, channel_axis: int | None = None) -> ImageLayout:
    """Work out the planes and channels of ``image`` (numpy, dask or zarr array, or a nested list).

    Raises
    ------
    ValueError
        If the image is empty, of a non-numeric dtype, has the wrong number of
        dimensions, or has several channels and no ``channel`` choice.
    """
    from ..data.arguments import check_integer

    if channel is not None:
        channel = check_integer(channel, "channel")  # True would pick channel 1
    if channel_axis is not None:
        channel_axis = check_integer(channel_axis, "channel_axis")
    image = as_image_array(image)
    shape = tuple(int(s) for s in image.shape)
    dtype = np.dtype(image.dtype)
    if len(shape) < 2:
        raise ValueError(f"expected a 2D image (H, W), (H, W, C) or a stack, got shape {shape}")
    if math.prod(shape) == 0:
        raise ValueError(f"the image is empty (shape {shape})")
    if dtype.kind not in "uif":
        raise ValueError(f"image dtype must be integer or float, got {dtype} (shape {shape})")
    ndim = len(shape)
    if channel_axis is not None:
        if not -ndim <= channel_axis < ndim:
            raise ValueError(f"channel_axis {channel_axis} is out of range for shape {shape}")
        channel_axis %= ndim
    elif last_axis_is_channels(shape):
        channel_axis = ndim - 1
    elif ndim == 3 and channel is not None:
        channel_axis = 0
    rgb = False
    if channel_axis is not None:
        n_channels = shape[channel_axis]
        if channel is not None:
            if not -n_channels <= channel < n_channels:
                raise ValueError(
                    f"channel {channel} does not exist: the image (shape {shape}) has "
                    f"{n_channels} channel(s) on axis {channel_axis}"
                )
            channel %= n_channels
        elif n_channels in (3, 4):
            rgb = True
        elif n_channels == 1:
            channel = 0
        else:
            raise ChannelsError(f"the image (shape {shape}) has {n_channels} channels on axis {channel_axis}")
    elif channel is not None:
        raise ValueError(f"channel={channel} given but the image (shape {shape}) has no channel axis")
    n_spatial = ndim - (channel_axis is not None)
    if n_spatial not in (2, 3):
        channels = f" besides the channels on axis {channel_axis}" if channel_axis is not None else ""
        more = ": segment each (Z, H, W) stack of it (each time point) on its own" if n_spatial > 3 else ""
        raise ValueError(f"expected (H, W) planes or a (Z, H, W) stack{channels}, got shape {shape}{more}")
    return ImageLayout(shape, channel_axis, channel, rgb, n_spatial == 3)


def squeeze_leading_axes(image: Any, channel: int | None = None) -> Any:
    """``image`` without leading axes of one that would make it a one-plane stack.

    ``(1, H, W)`` and ``(1, 1, H, W)`` (as numpy code often saves a plane) become
    ``(H, W)``, so a file reads as the plane it holds; ``(1, W, 3)``, one RGB row, stays.
    """
    while image.ndim > 2 and image.shape[0] == 1:
        try:
            layout = describe_layout(image, channel)
        except ValueError:  # e.g. (1, 1, H, W): too many axes until the first goes
            layout = None
        if layout is not None and not (layout.stack and layout.spatial_axes[0] == 0):
            break
        image = image[0]
    return image


MAX_LAST_AXIS_CHANNELS = 16


def last_axis_is_channels(shape: tuple[int, ...]) -> bool:
    """Whether :func:`describe_layout` reads the last axis of ``shape`` as channels (no ``channel_axis`` given).

    Three axes or more, and a last one of 1 to 4 (grey, -, RGB, RGBA) or of 5 to 16 under a
    quarter of the two before it: (H, W, 5..16) are multichannel pixels, not H planes 5 px wide.
    """
    return len(shape) >= 3 and (shape[-1] <= 4 or _looks_like_channels(shape))


def _looks_like_channels(shape: tuple[int, ...]) -> bool:
    """A last axis of at most 16, under a quarter of both axes before it, holds channels."""
    last, height, width = shape[-1], shape[-3], shape[-2]
    return last <= MAX_LAST_AXIS_CHANNELS and 4 * last <= min(height, width)


def stack_note(layout: ImageLayout) -> str | None:
    """A warning for a ``(2 to 4, H, W)`` image read as planes: often channels stored first
    (DAPI and GFP, or RGB)."""
    planes = layout.shape[0]
    if layout.stack and layout.channel is None and len(layout.shape) == 3 and 2 <= planes <= 4:
        colour = "save the image as (H, W, 3) if they are colours, or " if planes > 2 else ""
        return (
            f"shape {layout.shape} was read as {planes} planes (Z, H, W); if these are "
            f"channels, {colour}pick the nuclear one with --channel N"
        )
    return None


def _wide(dtype: np.dtype) -> bool:
    """Integers of 32 bits or more and float64: values float32 may not hold exactly."""
    return (dtype.kind in "iu" and dtype.itemsize >= 4) or (dtype.kind == "f" and dtype.itemsize > 4)


class PlaneReader:
    """One 2D plane of an image, read window by window as numpy.

    ``read(ys, xs)`` returns ``(h, w)`` grey or ``(h, w, 3)`` RGB pixels; only
    that window is read from a dask or zarr array. Infinite pixels come back as
    NaN (normalisation maps them to the low end); 32- and 64-bit pixels come back
    as float64 less the plane's median, so the float32 of normalisation keeps
    their contrast.
    """

    def __init__(self, image: Any, layout: ImageLayout, plane: int = 0):
        if not 0 <= plane < layout.n_planes:
            raise ValueError(f"plane {plane} out of range: the image has {layout.n_planes} plane(s)")
        self.image = image
        self.layout = layout
        self.plane = plane

    @property
    def shape(self) -> tuple[int, int]:
        return self.layout.plane_shape

    @property
    def rgb(self) -> bool:
        return self.layout.rgb

    def read(self, ys: slice, xs: slice) -> np.ndarray:
        window = self._read(ys, xs)
        if _wide(window.dtype):
            # float32 (normalisation) keeps 24 bits: 4e9 + a nucleus's 1000 grey levels
            # would round to steps of 256. One offset per plane keeps tiles consistent.
            window = window.astype(np.float64) - self._offset
        if window.dtype.kind == "f":
            infinite = np.isinf(window)
            if infinite.any():  # e.g. a ratio image divided by zero: like NaN, not a percentile
                window = np.where(infinite, np.nan, window)
        return window

    @cached_property
    def _offset(self) -> float:
        """The median of a subsample's finite pixels, subtracted from wide dtypes."""
        from ..data.normalize import subsample_stride

        stride = subsample_stride(self.shape, 100_000)
        sample = self._read(slice(None, None, stride), slice(None, None, stride)).astype(np.float64)
        finite = sample[np.isfinite(sample)]
        return float(np.median(finite)) if finite.size else 0.0

    def _read(self, ys: slice, xs: slice) -> np.ndarray:
        layout = self.layout
        index: list[Any] = [slice(None)] * len(layout.shape)
        spatial = layout.spatial_axes
        if layout.stack:
            index[spatial[0]] = self.plane
        index[spatial[-2]], index[spatial[-1]] = ys, xs
        if layout.channel_axis is not None:
            index[layout.channel_axis] = layout.channel if layout.channel is not None else slice(0, 3)
        window = np.asarray(self.image[tuple(index)])
        if layout.rgb and layout.channel_axis is not None:
            # After integer indexing the channel axis stays the last remaining axis
            # only if it came after the spatial ones; move it there in any case.
            remaining = [a for a in range(len(layout.shape)) if not isinstance(index[a], int)]
            window = np.moveaxis(window, remaining.index(layout.channel_axis), -1)
        return window

    def subsample(self, max_pixels: int = 1_000_000) -> np.ndarray:
        """The strided subsample :func:`~..data.normalize.compute_percentiles` would read (for percentiles)."""
        from ..data.normalize import subsample_stride

        stride = subsample_stride(self.shape, max_pixels)
        return self.read(slice(None, None, stride), slice(None, None, stride))


def spatial_metadata(
    values: Sequence[float] | None, layout: ImageLayout, name: str
) -> tuple[float, ...] | None:
    """Keep the entries of an image's ``scale``/``translate`` that belong to the labels' axes.

    ``values`` may have one entry per image axis or one per labels axis; they
    must be finite, and a ``scale`` positive (napari refuses a zero scale).
    """
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a sequence of numbers, one per axis, got {values!r}")
    values = tuple(values)
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, numbers.Real)]
    if bad:
        raise TypeError(f"{name} must hold numbers, got {bad[0]!r} in {values!r}")
    values = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be finite, got {values}")
    if name == "scale" and not all(v > 0 for v in values):
        raise ValueError(f"scale must be > 0 on every axis (pixel sizes), got {values}")
    n_labels = len(layout.labels_shape)
    if len(values) == n_labels:
        return values
    if len(values) == len(layout.shape):
        return tuple(values[a] for a in layout.spatial_axes)
    raise ValueError(
        f"{name} has {len(values)} entries; the image (shape {layout.shape}) needs "
        f"{n_labels} (labels axes) or {len(layout.shape)}"
    )
