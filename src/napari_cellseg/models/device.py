"""Choosing the device to run on: CUDA, then Apple MPS, then the CPU.

torch is imported inside functions: importing this module is light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
DEVICE_HELP = "auto (CUDA, then Apple MPS, then the CPU), cpu, cuda, cuda:N or mps"  # every --device


def check_device_name(text: str) -> str:
    """``text`` as a device name every command takes, lower-cased; no GPU is looked for.

    The one check of ``--device`` (train, pretrain, segment, tune-watershed) and of a
    training config's ``device``: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Raises
    ------
    ValueError
        Any other text, quoted with the names allowed.
    """
    name = str(text).strip().lower()
    kind, colon, index = name.partition(":")
    if name in ("auto", "cpu", "cuda", "mps") or (kind == "cuda" and colon and index.isdigit()):
        return name
    raise ValueError(f"unknown device {text!r}; use {DEVICE_CHOICES}")


def device_option(text: str) -> str:
    """argparse ``type=`` of every ``--device``: :func:`check_device_name`, refused as a usage error."""
    import argparse

    try:
        return check_device_name(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def device_problems(text: str) -> list[str]:
    """A config's ``device`` problem (``["device: why"]``), or ``[]`` for a name :func:`check_device_name` takes."""
    try:
        check_device_name(text)
    except ValueError as err:
        return [f"device: {err}"]
    return []


def cuda_bf16_supported(device: torch.device | str) -> bool:
    """Whether the CUDA GPU ``device`` computes bfloat16 natively (compute capability 8.0 on; ROCm: any).

    ``torch.cuda.is_bf16_supported`` asks about torch's current GPU, which stays GPU 0
    for ``cuda:N`` unless ``set_device`` was called; this asks about ``device`` itself.
    """
    import torch

    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(device)[0] >= 8


def resolve_device(preference: str | torch.device = "auto") -> tuple[torch.device, str]:
    """Pick the device to run on, with the reason in plain words.

    Parameters
    ----------
    preference : str or torch.device
        ``"auto"`` (CUDA, then Apple MPS, then CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, ``"mps"``.

    Returns
    -------
    device : torch.device
    reason : str

    Raises
    ------
    ValueError
        If a device that is not available is asked for explicitly.
    """
    import torch

    def cuda_reason(device: torch.device) -> str:
        index = device.index or 0
        return f"NVIDIA GPU {index} ({torch.cuda.get_device_name(index)}) found, using CUDA"

    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    text = str(preference).strip().lower()  # as check_device_name reads it: " CPU" passed there
    if text == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda", torch.cuda.current_device())
            return device, cuda_reason(device)
        if mps_ok:
            return torch.device("mps"), "Apple GPU found, using MPS"
        why = (
            "this PyTorch build has no CUDA support"
            if torch.version.cuda is None
            else "no NVIDIA GPU is visible"
        )
        return torch.device("cpu"), f"no GPU available ({why}), using the CPU"
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ValueError(f"unknown device {preference!r}; use {DEVICE_CHOICES}") from None
    if device.type == "cpu":
        return device, "the CPU was asked for"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                "this PyTorch build has no CUDA support"
                if torch.version.cuda is None
                else "no NVIDIA GPU is visible"
            )
            raise ValueError(f"device {preference!r} asked for, but CUDA is not available: {why}")
        if (device.index or 0) >= torch.cuda.device_count():
            raise ValueError(
                f"device {preference!r} asked for, but only {torch.cuda.device_count()} GPU(s) are visible"
            )
        return device, cuda_reason(device)
    if device.type == "mps":
        if not mps_ok:
            raise ValueError(f"device {preference!r} asked for, but Apple MPS is not available here")
        return device, "Apple GPU asked for, using MPS"
    raise ValueError(f"unsupported device {preference!r}; use {DEVICE_CHOICES}")
