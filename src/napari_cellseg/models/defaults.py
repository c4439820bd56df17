"""Default architecture settings, importable without torch (CLI, GUI, configs)."""

from ..config import is_whole_number  # standard library only: still no torch

# Default M2: ImageNet EfficientNet-Lite0 in timm's TF-compatible form.
DEFAULT_ARCH = "tf_efficientnet_lite0"
# Its number of transferable stages (see models.stages).
DEFAULT_M2_DEPTH = 5
# Decoder channels per level, deepest first, the input resolution last.
DEFAULT_DECODER_CHANNELS = (64, 48, 32, 24, 16)
# At most this many new layers beyond l (extra blocks at full resolution).
MAX_EXTRA_BLOCKS = 2


def layer_problems(transfer_layers, new_layers, frozen_layers, depth: int | None) -> list[str]:
    """Why ``l``/``l_a``/``l_f`` cannot be built from an M2 with ``depth`` stages (empty if they can).

    The rule of :func:`napari_cellseg.models.surgery.build_model`:
    ``1 <= l <= depth``, ``1 <= l_a <= l + MAX_EXTRA_BLOCKS``, ``0 <= l_f <= l``.
    ``depth=None``: the M2 is not known yet (a model's config.json read before its
    network is built), so ``l`` has no upper bound here.
    """
    l, l_a, l_f = transfer_layers, new_layers, frozen_layers  # noqa: E741
    names = ("transfer_layers l", "new_layers l_a", "frozen_layers l_f")
    # True is an int to Python: never a count of layers
    wrong = [f"{name}={value!r} is not a whole number of layers" for name, value in zip(names, (l, l_a, l_f))
             if not is_whole_number(value)]  # fmt: skip
    if wrong:
        return wrong
    if depth is None and l < 1:  # l_a and l_f are judged against l: only this problem counts
        return [f"transfer_layers l={l} is out of range (at least 1: the M2 stages kept)"]
    if depth is not None and not 1 <= l <= depth:
        return [f"transfer_layers l={l} is out of range for the M2's {depth} stages (1..{depth})"]
    problems = []
    if not 1 <= l_a <= l + MAX_EXTRA_BLOCKS:
        problems.append(f"new_layers l_a={l_a} is out of range for l={l} (1..{l + MAX_EXTRA_BLOCKS})")
    if not 0 <= l_f <= l:
        problems.append(
            f"frozen_layers l_f={l_f} is out of range for l={l} (0..{l}: at most the transferred stages)"
        )
    return problems
