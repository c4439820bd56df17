"""napari layer helpers shared by the dock widgets (no core logic here).

Edits of an existing Labels layer go through ``Labels.data_setitem`` inside
``block_history``: the layer keeps its data array and one Ctrl+Z undoes the
whole edit, exactly as after a brush stroke.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..app.annotation import KIND_ANNOTATION, KIND_CELLS, KIND_KEY
from ._common import annotation_colormap, is_layer_type

KIND_PROBABILITY = "probability"  # metadata kind of the probability layers Segment adds
KIND_REVIEW = "review"  # metadata kind of the error layers Review adds


def find_layer(viewer, name: str, layer_type: str = "Labels"):
    """The layer called ``name`` if it has type ``layer_type``, else None."""
    if name in viewer.layers and is_layer_type(viewer.layers[name], layer_type):
        return viewer.layers[name]
    return None


def set_pixels(layer, indices: tuple[np.ndarray, ...], value: Any) -> int:
    """Set ``layer.data[indices] = value`` as one undoable step; return pixels changed."""
    if len(indices) == 0 or indices[0].size == 0:
        return 0
    before = np.asarray(layer.data[indices])
    changed = int(np.count_nonzero(before != value))
    with layer.block_history():
        layer.data_setitem(indices, value)
    return changed


def replace_labels(layer, new: np.ndarray) -> int:
    """Make ``layer``'s pixels equal ``new`` as one undoable step; return pixels changed.

    Raises
    ------
    ValueError
        If ``new`` has another shape, or values the layer's dtype cannot hold.
    """
    data = np.asarray(layer.data)
    new = np.asarray(new)
    if new.shape != data.shape:
        raise ValueError(f"layer {layer.name!r} has shape {data.shape}; the new labels {new.shape}")
    top = int(new.max()) if new.size else 0
    if np.issubdtype(data.dtype, np.integer) and top > np.iinfo(data.dtype).max:
        raise ValueError(
            f"layer {layer.name!r} holds {data.dtype} values; {top} labels do not fit: "
            "delete the layer and convert again"
        )
    indices = np.nonzero(data != new)
    if indices[0].size == 0:
        return 0
    with layer.block_history():
        layer.data_setitem(indices, new[indices])
    layer.refresh()
    return int(indices[0].size)


def placement(like, ndim: int) -> dict[str, Any]:
    """Where the layer ``like`` sits in the world, for an ``ndim``-D layer drawn on it.

    The scale, translate, units and axis labels of its last ``ndim`` axes; its
    rotate, shear and affine too when it has ``ndim`` axes (a layer without them
    would be drawn beside the image it was made from).
    """
    spatial: dict[str, Any] = {"scale": tuple(like.scale)[-ndim:], "translate": tuple(like.translate)[-ndim:]}
    for key in ("units", "axis_labels"):
        value = getattr(like, key, None)
        if value is not None:
            spatial[key] = tuple(value)[-ndim:]
    if like.ndim == ndim:
        spatial.update(
            rotate=np.array(like.rotate), shear=np.array(like.shear), affine=like.affine.affine_matrix
        )
    return spatial


def set_placement(layer, spatial: dict[str, Any]) -> None:
    """Move an existing layer to ``spatial`` (from :func:`placement`)."""
    for key, value in spatial.items():
        setattr(layer, key, value)


def put_labels(viewer, name: str, data: np.ndarray, *, like=None, annotation: bool = False, metadata=None):
    """Write ``data`` into the Labels layer ``name`` (undoably), or add that layer.

    Parameters
    ----------
    like : napari layer, optional
        The image: the layer takes its :func:`placement` (an existing one is moved).
    annotation : bool
        A 3-class annotation: fixed class colours and ``metadata["cellseg_kind"]``.

    Returns
    -------
    layer, added : napari Labels layer, bool
    """
    layer = find_layer(viewer, name)
    if layer is not None and np.asarray(layer.data).shape == data.shape:
        replace_labels(layer, data)
        if like is not None:  # the image may have moved since: the cells follow it
            set_placement(layer, placement(like, data.ndim))
        return layer, False
    if layer is not None:  # another image's layer of that name: keep it, add beside it
        name = f"{name} ({data.shape[0]}x{data.shape[1]})"
    meta = {KIND_KEY: KIND_ANNOTATION if annotation else KIND_CELLS}
    meta.update(metadata or {})
    kwargs: dict[str, Any] = {"name": name, "metadata": meta}
    if like is not None:
        kwargs.update(placement(like, data.ndim))
    if annotation:
        kwargs["colormap"] = annotation_colormap()
        kwargs["opacity"] = 0.7
    else:
        kwargs["opacity"] = 0.5
    return viewer.add_labels(data, **kwargs), True


def put_probability(viewer, name: str, data: np.ndarray, spatial: dict, colormap: str):
    """Show a probability map as an additive Image layer, reusing ``name`` where the shape fits.

    ``spatial`` is the :func:`placement` of the image it was predicted from.
    """
    if name in viewer.layers:
        layer = viewer.layers[name]
        if is_layer_type(layer, "Image") and layer.data.shape == data.shape:
            layer.data = data
            set_placement(layer, spatial)
            return layer
        viewer.layers.remove(name)
    return viewer.add_image(
        data, name=name, colormap=colormap, contrast_limits=(0.0, 1.0), blending="additive",
        opacity=0.7, metadata={KIND_KEY: KIND_PROBABILITY}, **spatial,
    )  # fmt: skip
