"""From network logits to background / boundary / interior probabilities.

torch is imported inside functions: importing this module is light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Network output channels each loss trains.
LOSS_OUT_CHANNELS = {"weighted-ce": 3, "weighted-bce": 2}


def logits_to_probabilities(logits: torch.Tensor, loss: str) -> torch.Tensor:
    """Turn network logits into ``(N, 3, H, W)`` background/boundary/interior probabilities.

    ``weighted-ce``: softmax over the 3 channels.

    ``weighted-bce``: with ``f = sigmoid(logits[:, 0])`` (foreground) and
    ``b = sigmoid(logits[:, 1])`` (boundary), trained as independent
    per-pixel probabilities where boundary pixels are a subset of the
    foreground::

        background = 1 - f
        boundary   = min(b, f)
        interior   = f - min(b, f)

    so the three are non-negative and sum to 1, boundary never exceeds the
    foreground, and when the network is consistent (``b <= f``) the boundary
    probability is exactly ``b``.

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, 3, H, W)`` for ``weighted-ce``, ``(N, 2, H, W)`` for ``weighted-bce``.
    loss : {"weighted-ce", "weighted-bce"}

    Returns
    -------
    torch.Tensor
        ``(N, 3, H, W)`` probabilities, same dtype and device as ``logits``.
    """
    import torch

    if loss not in LOSS_OUT_CHANNELS:
        raise ValueError(f"unknown loss {loss!r}; expected one of {list(LOSS_OUT_CHANNELS)}")
    channels = LOSS_OUT_CHANNELS[loss]
    if logits.ndim != 4 or logits.shape[1] != channels:
        raise ValueError(
            f"loss {loss!r} expects logits of shape (N, {channels}, H, W), got {tuple(logits.shape)}"
        )
    if loss == "weighted-ce":
        return torch.softmax(logits, dim=1)
    foreground = torch.sigmoid(logits[:, 0])
    boundary = torch.minimum(torch.sigmoid(logits[:, 1]), foreground)
    return torch.stack([1 - foreground, boundary, foreground - boundary], dim=1)
