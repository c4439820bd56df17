"""Split a timm classifier into the stages that transfer learning counts (``l``).

timm describes a CNN's feature levels in ``model.feature_info``: for each level,
the module whose output it is, its stride ("reduction") and its channels. A
*stage* here is every module from just after the previous level's module up to
and including this level's module, in registration order (one level of
``nn.Sequential`` such as ``blocks`` is flattened, as timm's ``features_only``
does). Modules after the last level (``conv_head``, pooling, classifier) are
never transferred.

The default M2, ``tf_efficientnet_lite0``, has 5 stages:

=====  ==============================  ======  ========
stage  modules                         stride  channels
=====  ==============================  ======  ========
1      conv_stem, bn1, blocks.0        2       16
2      blocks.1                        4       24
3      blocks.2                        8       40
4      blocks.3, blocks.4              16      112
5      blocks.5, blocks.6              32      320
=====  ==============================  ======  ========
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import TYPE_CHECKING

from .m2 import ModelLoadError

if TYPE_CHECKING:
    import torch


@dataclasses.dataclass(frozen=True)
class StageInfo:
    """One transferable stage of an M2.

    Attributes
    ----------
    index : int
        1-based stage number (``l`` counts these).
    modules : tuple of str
        The M2 modules it is made of, by their names in the classifier.
    reduction : int
        Output stride relative to the input.
    channels : int
        Output channels.
    """

    index: int
    modules: tuple[str, ...]
    reduction: int
    channels: int


def _feature_levels(model: torch.nn.Module, arch: str) -> list[dict]:
    info = getattr(model, "feature_info", None)
    if info is None:
        raise ModelLoadError(f"architecture {arch!r} has no feature_info: timm cannot split it into stages")
    levels = info.get_dicts() if hasattr(info, "get_dicts") else list(info)
    if not levels:
        raise ModelLoadError(f"architecture {arch!r} lists no feature levels")
    return levels


def _flat_children(model: torch.nn.Module, level_modules: set[str]) -> list[tuple[str, torch.nn.Module]]:
    import torch

    children = []
    for name, child in model.named_children():
        inside = any(m.startswith(name + ".") for m in level_modules)
        if inside and isinstance(child, torch.nn.Sequential | torch.nn.ModuleList):
            children += [(f"{name}.{sub}", module) for sub, module in child.named_children()]
        else:
            children.append((name, child))
    return children


def split_stages(model: torch.nn.Module, arch: str = "") -> tuple[list[torch.nn.Sequential], list[StageInfo]]:
    """Split a timm classifier into its feature stages.

    The returned ``nn.Sequential`` stages share their modules (and weights)
    with ``model``; each module keeps its M2 name with dots as underscores
    (``blocks.0`` -> ``blocks_0``).

    Parameters
    ----------
    model : torch.nn.Module
        A timm CNN classifier.
    arch : str
        Its name, for error messages.

    Returns
    -------
    stages : list of torch.nn.Sequential
    infos : list of StageInfo

    Raises
    ------
    ModelLoadError
        If the architecture cannot be split into sequential stages (no
        ``feature_info``, or a level deeper than one ``Sequential``).
    """
    import torch

    levels = _feature_levels(model, arch)
    level_modules = [lv["module"] for lv in levels]
    children = _flat_children(model, set(level_modules))
    names = [name for name, _ in children]
    missing = [m for m in level_modules if m not in names]
    if missing:
        raise ModelLoadError(
            f"architecture {arch!r} cannot be split into sequential stages: feature level module(s) "
            f"{missing} are nested too deeply; use a CNN such as tf_efficientnet_lite0, "
            "efficientnet_b0, mobilenetv3_small_050 or resnet10t"
        )
    stages, infos, current, current_names = [], [], OrderedDict(), []
    level_iter = iter(levels)
    level = next(level_iter)
    for name, module in children:
        current[name.replace(".", "_")] = module
        current_names.append(name)
        if name == level["module"]:
            infos.append(
                StageInfo(
                    index=len(infos) + 1,
                    modules=tuple(current_names),
                    reduction=int(level["reduction"]),
                    channels=int(level["num_chs"]),
                )
            )
            stages.append(torch.nn.Sequential(current))
            current, current_names = OrderedDict(), []
            level = next(level_iter, None)
            if level is None:
                break
    return stages, infos


def check_stages(stages: list[torch.nn.Module], infos: list[StageInfo], arch: str, size: int = 64) -> None:
    """Run a small input through the stages and check each output's channels and stride.

    Catches architectures whose forward is not the plain sequence of their
    modules (transformers, models with extra tensors) before they train wrong.

    Raises
    ------
    ModelLoadError
        If a stage's output is not ``(1, channels, size/reduction, ...)``.
    """
    import torch

    size = max(size, 2 * max(info.reduction for info in infos))
    x = torch.zeros(1, 3, size, size)
    # The stages' modules may be the caller's: put every module's mode back afterwards.
    modes = [(m, m.training) for stage in stages for m in stage.modules()]
    try:
        with torch.no_grad():
            for stage, info in zip(stages, infos):
                stage.eval()
                x = stage(x)
                expected = (info.channels, -(-size // info.reduction))
                if not isinstance(x, torch.Tensor) or x.ndim != 4 or (x.shape[1], x.shape[2]) != expected:
                    got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                    raise ModelLoadError(
                        f"architecture {arch!r} is not a sequential CNN: stage {info.index} "
                        f"({', '.join(info.modules)}) gives {got} for a {size}x{size} input, expected "
                        f"(1, {info.channels}, {expected[1]}, ...)"
                    )
    except (RuntimeError, AssertionError, TypeError) as err:
        raise ModelLoadError(f"architecture {arch!r} cannot run as sequential stages ({err})") from None
    finally:
        for module, mode in modes:
            module.training = mode
