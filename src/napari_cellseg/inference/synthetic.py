"""Plausible class probabilities made from ground-truth instances.

For tests, benchmarks, documentation pictures and tuning experiments without a
trained network: the 3-class target of the instances (``data.targets``) is
turned into confident logits, perturbed by smooth noise, blurred (which thins
the boundary between touching cells, as a real network's output does) and
passed through a softmax.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def probabilities_from_instances(
    labels,
    *,
    blur: float = 1.5,
    noise: float = 0.5,
    confidence: float = 4.0,
    noise_scale: float = 2.0,
    thickness: int = 1,
    seed: int | None = 0,
) -> np.ndarray:
    """float32 ``(3, H, W)`` probabilities (background, boundary, interior) from labels.

    Parameters
    ----------
    labels : (H, W) array of int
        Instance labels, 0 background.
    blur : float
        Gaussian sigma (pixels) applied to the logits, >= 0; 0 for none.
    noise : float
        Standard deviation of the additive logit noise, >= 0; 0 for none.
    confidence : float
        Logit of the true class (others 0) before noise and blur, > 0.
    noise_scale : float
        Gaussian sigma (pixels) that makes the noise spatially smooth, >= 0;
        0 leaves it pixel-wise (white).
    thickness : int
        Boundary width of the target, in pixels.
    seed : int, optional
        Seed of the noise (>= 0); None for a fresh one.

    Returns
    -------
    ndarray of float32, shape (3, H, W)
        Sums to 1 over the first axis.
    """
    from ..data.arguments import check_integer, check_number
    from ..data.targets import instances_to_targets

    blur = check_number(blur, "blur", minimum=0)
    noise = check_number(noise, "noise", minimum=0)
    confidence = check_number(confidence, "confidence", positive=True)  # NaN gave NaN maps
    noise_scale = check_number(noise_scale, "noise_scale", minimum=0)
    if seed is not None:
        seed = check_integer(seed, "seed", minimum=0)
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2D (H, W) array, got shape {labels.shape}")
    target = instances_to_targets(labels, thickness=thickness)
    logits = np.stack([(target == k) for k in range(3)]).astype(np.float32) * np.float32(confidence)
    if noise > 0:
        rng = np.random.default_rng(seed)
        field = rng.standard_normal(logits.shape).astype(np.float32)
        if noise_scale > 0:
            field = ndi.gaussian_filter(field, (0, noise_scale, noise_scale))
            field /= max(float(field.std()), 1e-6)
        logits += np.float32(noise) * field
    if blur > 0:
        logits = ndi.gaussian_filter(logits, (0, blur, blur))
    logits -= logits.max(axis=0, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=0, keepdims=True)
    return logits
