"""The block-wise (bounded-memory) pipeline for :mod:`.batch`: a large plane, or a stack of them.

:mod:`.batch` reads an image file whole, so what this bounds is everything else: the
network and the watershed run block by block (:mod:`.big`), one plane at a time. A stack's
planes share one resampling factor, measured once on the middle plane as
:func:`.segment.segment_image` does, and each plane's ids follow the previous plane's, so
ids stay unique across planes. The labels come back as one array for the outputs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .images import ImageLayout, describe_layout

# Rows copied at a time from a plane's zarr into the labels: bounds the temporaries.
_COPY_ROWS = 2048


def needs_block_wise(layout: ImageLayout, big_image_pixels: int) -> bool:
    """A plane (not the whole stack, nor channels x rows) larger than ``big_image_pixels``."""
    return math.prod(layout.plane_shape) > big_image_pixels


def segment_block_wise(
    model, config, image: Any, scratch: Path, kwargs: dict, keep_probabilities: bool
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """``(labels, probabilities or None, metadata)`` of an image in memory, plane by plane.

    ``kwargs`` are :mod:`.batch`'s prediction options (``tile_size``, ``overlap``,
    ``batch_size``, ``diameter``, ``channel``, ``optimize``, ``tta``, ``tta_zooms``).
    Labels are uint16 (uint32 past 65535 cells) of the image's spatial shape; the
    metadata holds what :meth:`.segment.SegmentationResult.layer_attributes` stores.
    """
    from .big import segment_big
    from .segment import label_dtype, unscaled_note, watershed_params
    from .tiled import iter_scale_factor, make_runner, resolve_diameter, run_to_end

    layout = describe_layout(image, kwargs["channel"])
    params = watershed_params(config)
    # One runner for every plane: a compiled network (optimize) is built once.
    runner = make_runner(model, config, None, True, kwargs["optimize"], kwargs["tta"], kwargs["tta_zooms"])
    # No training scale: the image's own scale, as the batch's note says (see .segment.unscaled_note).
    unscaled = bool(unscaled_note(config, kwargs["diameter"]))
    diameter = None if unscaled else resolve_diameter(config, kwargs["diameter"])
    factor = 1.0
    if not unscaled:
        factor = run_to_end(
            iter_scale_factor(
                runner, config, image, layout, diameter, kwargs["tile_size"], kwargs["overlap"], params
            )
        )
    if diameter == 0:  # estimated: what the factor says, as segment_image records it
        diameter = config.object_diameter / factor if factor != 1.0 else None
    predict = {key: kwargs[key] for key in ("tile_size", "overlap", "batch_size", "channel")}
    results = []
    for z in range(layout.n_planes):
        kept = {"probabilities_out": scratch / f"probabilities-{z}.zarr"} if keep_probabilities else {}
        results.append(
            segment_big(
                runner, config, _plane(image, layout, z), scratch / f"labels-{z}.zarr", params,
                scale_factor=factor, **kept, **predict,
            )
        )  # fmt: skip
    total = sum(r.n_instances for r in results)
    labels = np.zeros(layout.labels_shape, label_dtype(total))
    probabilities = None
    if keep_probabilities:
        probabilities = np.zeros((3, *layout.labels_shape), results[0].probabilities.dtype)
    offset = 0
    for z, result in enumerate(results):
        target = (z,) if layout.stack else ()
        for start in range(0, layout.plane_shape[0], _COPY_ROWS):
            rows = slice(start, start + _COPY_ROWS)
            block = np.asarray(result.labels[rows])
            block[block > 0] += offset  # the ids of plane z follow those of the planes before
            labels[(*target, rows)] = block
            if probabilities is not None:
                probabilities[(slice(None), *target, rows)] = result.probabilities[:, rows]
        offset += result.n_instances
    metadata = {
        "scale_factor": float(factor),
        "diameter": None if diameter is None else float(diameter),
        "n_instances": total,
        "watershed": params.to_dict(),
        "block_wise": True,
        "truncated": sum(r.truncated for r in results),
    }
    return labels, probabilities, metadata


def _plane(image: Any, layout: ImageLayout, z: int) -> Any:
    """Plane ``z`` of a stack as a view (the image itself when it is one plane)."""
    if not layout.stack:
        return image
    index: list[Any] = [slice(None)] * len(layout.shape)
    index[layout.spatial_axes[0]] = z
    return image[tuple(index)]
