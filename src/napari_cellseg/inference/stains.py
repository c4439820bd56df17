"""Stain unmixing before segmentation: immunohistochemistry slides seen as haematoxylin alone.

On haematoxylin-DAB slides whose DAB marks cytoplasm or membranes, the brown
around (and over) the nuclei hides them from a network trained on H&E.
Unmixing the optical density into haematoxylin, eosin and DAB (Ruifrok &
Johnston, the vectors of :data:`..data.photometric.RGB_FROM_HED`) and drawing
the haematoxylin alone gives the network a blue nuclear stain it reads well
(experiments.md step 14). Nuclear DAB (Ki-67, ER/PR: brown *nuclei*) is removed
with the rest, so those slides must be segmented as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def haematoxylin_only(image: Any, name: str = "image") -> np.ndarray:
    """The haematoxylin of a brightfield RGB(A) image, drawn alone as float32 RGB in [0, 1].

    Parameters
    ----------
    image : array_like, (..., 3) or (..., 4)
        Transmitted light (white background): uint8, uint16, or float in [0, 1].
        Leading axes (planes of a stack) are kept; alpha is dropped.
    name : str
        Named in the error for an image that is not RGB.

    Returns
    -------
    (..., 3) float32 array
        The same slide with its eosin and DAB taken out.
    """
    from ..data import photometric

    array = np.asarray(image)
    if array.ndim < 3 or array.shape[-1] not in (3, 4):
        raise ValueError(
            f"{name}: haematoxylin-only needs a brightfield RGB image (..., 3), got shape {array.shape}"
        )
    rgb = array[..., :3]
    if np.issubdtype(rgb.dtype, np.integer):
        light = rgb.astype(np.float32) / np.float32(np.iinfo(rgb.dtype).max)
    else:
        light = rgb.astype(np.float32)
        peak = float(light.max()) if light.size else 1.0
        if peak > 1.0:  # float images on another range: the brightest pixel is white
            light /= np.float32(peak)
    return photometric.haematoxylin_only(light)
