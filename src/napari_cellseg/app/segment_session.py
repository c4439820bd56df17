"""Qt-free logic behind one-click segmentation (the Segment panel and the layer menu).

- :func:`iter_segment_one_click`: load the current model (cached while its
  files are unchanged), segment one image, keep the class probabilities;
  a generator of progress reports returning a :class:`OneClickResult`.
- :func:`watershed_again`: instances from stored probabilities with other
  watershed settings (what the sliders do), for one plane or a stack.
- :func:`initial_watershed`: the settings a model's config stores, else the defaults.
- :func:`cells_metadata`, :func:`result_notes`: what the cells layer records, and what to tell the user.
- :class:`SegmentedImages`: the images a panel segmented, each with its cells
  layer, its own probabilities and settings (the sliders tune the one shown).
- :func:`warm_up`: load the model ahead of the first click (the panel runs it
  in the background when it opens: importing torch and timm takes seconds).

torch is imported only when a model is loaded.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Generator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..inference.segment import SegmentationResult
from ..inference.tiled import PredictProgress
from ..inference.watershed import WatershedParams, check_probabilities, instances_from_probabilities
from .current_model import NO_MODEL_HELP, check_model_dir, model_watershed

# The watershed settings the sliders change.
SLIDER_FIELDS = ("interior_threshold", "boundary_weight", "split_height", "peak_height", "min_size")

# What to do with an image of several channels, in words for the GUI (it has no channel setting).
ONE_CHANNEL_HELP = (
    "segment one channel: open the nuclear channel as an image layer of its own and segment that"
)

# Held while a model is looked up and loaded: a click during the panel's warm-up waits for that load.
_cache_lock = threading.Lock()
_cached: dict[str, Any] = {}


def _files_key(directory: Path) -> tuple:
    return tuple(
        (name, (directory / name).stat().st_mtime_ns, (directory / name).stat().st_size)
        for name in ("config.json", "model.safetensors")
    )


def load_model_cached(directory: str | os.PathLike, device: Any = "auto"):
    """``(model, config)`` of a model folder; reused while its two files are unchanged.

    Raises
    ------
    ValueError
        If ``directory`` is not a model folder.
    ModelLoadError
        If its files are corrupt or do not match.
    """
    from ..inference.runtime import resolve_model

    path = check_model_dir(directory)
    key = (str(path), _files_key(path), str(device))
    with _cache_lock:
        if _cached.get("key") != key:
            model, config = resolve_model(path, device=device)
            _cached.update(key=key, model=model, config=config)
        return _cached["model"], _cached["config"]


def warm_up(directory: str | os.PathLike | None) -> bool:
    """Load the model in ``directory`` into the cache; True if it is ready.

    Problems are not raised: the click that needs the model reports them.
    """
    if directory is None:
        return False
    try:
        load_model_cached(directory)
    except Exception:  # the click explains what is wrong
        return False
    return True


def clear_model_cache() -> None:
    with _cache_lock:
        _cached.clear()


def initial_watershed(model_dir: str | os.PathLike | None) -> WatershedParams:
    """The model's tuned watershed settings (``config.json``'s ``watershed``), else the defaults."""
    stored = model_watershed(model_dir)
    try:
        return WatershedParams.from_dict(stored) if stored else WatershedParams()
    except ValueError:  # a bad stored value: the defaults still segment
        return WatershedParams()


def with_slider_values(params: WatershedParams, values: Mapping[str, float]) -> WatershedParams:
    """``params`` with the slider settings (:data:`SLIDER_FIELDS`) replaced."""
    unknown = sorted(set(values) - set(SLIDER_FIELDS))
    if unknown:
        raise ValueError(f"unknown watershed slider(s) {unknown}; sliders are {list(SLIDER_FIELDS)}")
    changes: dict[str, Any] = dict(values)
    if "min_size" in changes:
        changes["min_size"] = round(changes["min_size"])
    return replace(params, **changes)


def image_plane_data(data: Any, *, rgb: bool, multiscale: bool = False, name: str = "image") -> Any:
    """The array to segment from a napari image layer's data (level 0 of a pyramid).

    Raises
    ------
    ValueError
        If it is not a 2D grey image, an RGB(A) image, or a stack of either; the message
        says how to make one in napari (:func:`layer_shape_help`, ``name`` is the layer's).
    """
    if multiscale:
        data = data[0]
    shape = tuple(int(n) for n in getattr(data, "shape", ()))
    spatial = len(shape) - (1 if rgb else 0)
    if spatial not in (2, 3):
        kind = "RGB image" if rgb else "image"
        advice = f" {layer_shape_help(name, shape, rgb)[1]}." if spatial > 3 else ""
        raise ValueError(
            f"this {kind} has shape {shape}: one-click segmentation takes a 2D image (H, W), "
            f"an RGB image (H, W, 3) or a stack of 2D planes (Z, H, W).{advice}"
        )
    return data


def layer_shape_help(name: str, shape: tuple[int, ...], rgb: bool) -> tuple[str, str]:
    """What a napari image layer of ``shape`` (more than one 2D image) is, and how napari splits it.

    Returns ``(what, advice)``: ``"is a stack of shape ..."`` and Split Stack's result, or, where
    the last axis holds channels (Split Stack would cut along the rows), the console line that
    gives a layer per channel.
    """
    from ..inference.images import last_axis_is_channels

    shape = tuple(int(n) for n in shape)
    if not rgb and last_axis_is_channels(shape):
        return (
            f"has {shape[-1]} channel(s) on its last axis (shape {shape})",
            "To get a layer per channel, run in napari's console (Window > Console): "
            f"viewer.add_image(viewer.layers[{name!r}].data, channel_axis=-1)",
        )
    planes = shape[0]
    return (
        f"is a stack of shape {shape}",
        f"Right-click the layer > Split Stack makes {planes} layers of shape {shape[1:]}",
    )


@dataclass
class OneClickResult(SegmentationResult):
    """A :class:`~napari_cellseg.inference.segment.SegmentationResult` and why the image was
    segmented at its own scale (:func:`~napari_cellseg.inference.segment.unscaled_note`), or ""."""

    unscaled: str = ""


def iter_segment_one_click(
    image: Any,
    model_dir: str | os.PathLike | None,
    params: WatershedParams | None = None,
    *,
    rgb: bool = False,
    scale=None,
    translate=None,
    tta: bool = False,
    tta_zoom: bool = False,
    haematoxylin_only: bool = False,
    name: str = "image",
) -> Generator[PredictProgress, None, OneClickResult]:
    """Segment ``image`` with the model in ``model_dir``, keeping the probabilities.

    Parameters
    ----------
    image : array_like
        ``(H, W)``, ``(H, W, 3)`` with ``rgb``, or a stack of planes. Without ``rgb`` a
        last axis of channels is refused (napari shows it as planes, not colours).
    model_dir : path or None
        The model folder; None means there is no model (a clear error).
    params : WatershedParams, optional
        Default: the model's stored watershed settings.
    rgb : bool
        The last axis holds RGB(A) channels.
    scale, translate : sequence of float, optional
        Kept on the result (the image layer's).
    tta : bool
        Test-time augmentation (8 flips and quarter turns, 8x the network time).
    tta_zoom : bool
        Also average over the image zoomed by ``TTA_ZOOMS`` (3x the network time).
    haematoxylin_only : bool
        Segment the unmixed haematoxylin of an RGB image
        (:func:`~napari_cellseg.inference.stains.haematoxylin_only`): IHC slides.
    name : str
        The layer's name, for the advice on an image of several channels.

    Yields
    ------
    PredictProgress
        ``stage`` ``"model"`` while loading, then the prediction's reports.

    Returns
    -------
    OneClickResult
        ``labels``, float32 ``probabilities`` (3, ...), the settings used, and
        ``unscaled``: why the model could not resample the image (for :func:`result_notes`).

    Raises
    ------
    ValueError
        If there is no model or the image has an unsupported shape or dtype.
    """
    from ..inference.images import ChannelsError
    from ..inference.runtime import TTA_ZOOMS
    from ..inference.segment import iter_segment_image, unscaled_note

    if model_dir is None:
        raise ValueError(NO_MODEL_HELP)
    if haematoxylin_only:
        from ..inference.stains import haematoxylin_only as unmix

        if not rgb:
            raise ValueError("haematoxylin only needs an RGB image (a brightfield slide)")
        image = unmix(image)
    yield PredictProgress("model", 0, 1)
    model, config = load_model_cached(model_dir)
    yield PredictProgress("model", 1, 1)
    try:
        if not rgb:
            _refuse_channels_last(image)
        result = yield from iter_segment_image(
            model, config, image, params, channel_axis=-1 if rgb else None,
            scale=scale, translate=translate, keep_probabilities=True, tta=tta,
            tta_zooms=TTA_ZOOMS if tta_zoom else None,
            warn_small=False, warn_unscaled=False,  # result_notes says both
        )  # fmt: skip
    except ChannelsError as err:  # the panels have no channel setting: no API or CLI advice
        advice = layer_shape_help(name, np.shape(image), rgb=False)[1]  # channels: the console line
        raise ValueError(f"{err.reason}: {ONE_CHANNEL_HELP}. {advice}") from None
    return OneClickResult(**vars(result), unscaled=unscaled_note(config, None))


def _refuse_channels_last(image: Any) -> None:
    """Refuse a layer that is not RGB but whose last axis holds channels (``(H, W, 3)`` with
    ``rgb=False``): it was segmented as a colour image, its cells placed by its last two axes."""
    from ..inference.images import ChannelsError, describe_layout

    layout = describe_layout(image)  # two channels raise ChannelsError here
    if layout.channel_axis is not None:
        count = layout.shape[layout.channel_axis]
        raise ChannelsError(
            f"the image (shape {layout.shape}) has {count} channel(s) on its last axis and is not an RGB layer"
        )


def watershed_again(probabilities: np.ndarray, params: WatershedParams) -> np.ndarray:
    """Instances from stored probabilities: ``(3, H, W)``, or ``(3, Z, H, W)`` plane by plane.

    A stack's planes get consecutive ids (as one-click segmentation numbers them).
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim == 3:
        return instances_from_probabilities(probabilities, params)
    if probabilities.ndim != 4 or probabilities.shape[0] != 3:
        check_probabilities(probabilities)  # raises with the shape in the message
    planes = []
    offset = 0
    for index in range(probabilities.shape[1]):
        plane = instances_from_probabilities(probabilities[:, index], params).astype(np.uint32)
        plane[plane > 0] += offset
        offset = max(offset, int(plane.max()))
        planes.append(plane)
    labels = np.stack(planes)
    return labels.astype(np.uint16) if offset <= np.iinfo(np.uint16).max else labels


def cells_metadata(result: Any, model_dir: str | os.PathLike, tag: str | None) -> dict[str, Any]:
    """The cells layer's metadata: the model, the watershed settings, the resampling, the microscope tag."""
    metadata: dict[str, Any] = {"model": str(model_dir), "watershed": dict(result.watershed)}
    if result.scale_factor != 1.0:
        metadata.update(diameter=result.diameter, scale_factor=result.scale_factor)
    if tag:
        metadata["microscope"] = tag
    return metadata


def result_notes(result: SegmentationResult, tag: str | None) -> str:
    """What the user should know about a result: another microscope, a stack, a resampled,
    unscaled (a :class:`OneClickResult`'s ``unscaled``) or small image."""
    from ..inference.segment import small_image_note

    note = (
        ""
        if tag in (None, "C")
        else f" Note: the image is tagged microscope {tag}; the model is meant for C."
    )
    if result.labels.ndim == 3:  # a stack: every plane, not only the one shown
        planes = result.labels.shape[0]
        note += f" All {planes} planes were segmented, each on its own (cell numbers run on across them)."
        if planes <= 4:  # as many as a fluorescence image's channels often are
            note += (
                " If these planes are channels (nuclei, membrane...), right-click the layer > Split Stack "
                "and segment the nuclear one"
            )
            note += "; if they are colour channels, open the image as RGB (H, W, 3)." if planes > 2 else "."
    if result.scale_factor != 1.0 and result.diameter:
        note += (
            f" Nuclei measure about {result.diameter:.0f} px: the image was resampled "
            f"x{result.scale_factor:.2f} for the model."
        )
    unscaled = getattr(result, "unscaled", "")  # only a OneClickResult knows
    if unscaled:
        note += f" Note: {unscaled}."
    small = small_image_note(result.labels.shape[-2:], result.scale_factor)
    if small:
        note += f" Note: {small}."
    return note


@dataclass(eq=False)
class Segmented:
    """One segmented image: its cells layer, its probabilities and the watershed settings last asked for."""

    image: Any  # the image layer
    labels: Any  # its cells layer
    probabilities: np.ndarray
    params: WatershedParams
    model: str


class SegmentedImages:
    """The images a panel segmented, newest last: one entry per image and per cells layer.

    Layers are compared with ``==``: napari hands plugins a new proxy of a layer at each access.
    """

    def __init__(self) -> None:
        self.items: list[Segmented] = []

    def __contains__(self, item: object) -> bool:
        return any(item is other for other in self.items)

    def add(self, item: Segmented) -> Segmented:
        """Keep ``item``, replacing the image's earlier run (and any entry writing the same cells layer)."""
        self.items = [
            other for other in self.items if not (other.image == item.image or other.labels == item.labels)
        ]
        self.items.append(item)
        return item

    def find(self, image: Any) -> Segmented | None:
        return next((item for item in self.items if item.image == image), None)

    @property
    def latest(self) -> Segmented | None:
        return self.items[-1] if self.items else None

    def keep(self, alive) -> None:
        """Forget the entries whose image or cells layer ``alive(layer)`` says is gone (frees their probabilities)."""
        self.items = [item for item in self.items if alive(item.image) and alive(item.labels)]
