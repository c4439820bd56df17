"""Running the network on batches of tiles, and finding the model to run.

torch is imported inside functions: this module is reachable from the CLI's
registration and must stay light to import.
"""

from __future__ import annotations

import itertools
import os
import warnings
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "weights" / "default-model"


class ModelNotFoundError(FileNotFoundError):
    """No model directory where one was expected (e.g. no bundled default model yet)."""


def default_model_dir() -> Path:
    """Where the bundled default model lives (it may not be shipped yet)."""
    return DEFAULT_MODEL_DIR


# `--model default` names the bundled model, as `train --init-model default` does.
DEFAULT_MODEL_NAME = "default"


def resolve_model_dir(path: str | os.PathLike | None = None) -> Path:
    """The model directory to use: ``path``, or the bundled default when None or ``"default"``.

    Raises
    ------
    ModelNotFoundError
        If the directory or its ``config.json`` / ``model.safetensors`` is
        missing, or it is not a segmentation model (a file, an M2 classifier).
    TypeError
        If ``path`` is neither a path nor None (a number, a loaded model).
    """
    if not (path is None or isinstance(path, (str, os.PathLike))):
        raise TypeError(
            f"the model must be given as its folder (str or Path), or None or {DEFAULT_MODEL_NAME!r} for the "
            f"bundled model, got {type(path).__name__} {path!r:.80}"
        )
    if path is None or str(path) == DEFAULT_MODEL_NAME:
        directory = default_model_dir()
        if not (directory / "config.json").is_file():  # the package ships without a model
            raise ModelNotFoundError(
                f"no bundled default model yet (expected at {directory}); pass a model "
                "directory (model.safetensors + config.json, as written by `napari-cellseg train`) "
                "with --model DIR"
            )
        return directory
    from ..models.checkpoint import model_dir_problem

    directory = Path(path)
    problem = model_dir_problem(directory)  # a file, a missing folder or file, an M2 classifier
    if problem:
        raise ModelNotFoundError(problem)
    return directory


def resolve_model(path: str | os.PathLike | None = None, device: Any = "auto"):
    """Load the model at ``path`` (the bundled default when None or ``"default"``) in eval mode.

    Parameters
    ----------
    path : str or PathLike, optional
        A model folder (``model.safetensors`` + ``config.json``, as ``train`` writes it).
    device : str or torch.device
        ``"auto"`` (CUDA, then MPS, then the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    model, config
        The network on ``device`` (``"auto"``: CUDA, then MPS, then CPU) and
        its :class:`~napari_cellseg.models.checkpoint.ModelConfig`.

    Raises
    ------
    ModelNotFoundError, TypeError
        See :func:`resolve_model_dir`.
    ValueError
        If ``device`` is unknown or not available.
    """
    from ..models.checkpoint import load_model_dir

    directory = resolve_model_dir(path)
    model, config = load_model_dir(directory, device=pick_device(device))
    model.eval()
    return model, config


def load_default_model(device: Any = "auto"):
    """The bundled default model and its config (see :func:`resolve_model`)."""
    return resolve_model(None, device=device)


def pick_device(device: Any = "auto") -> torch.device:
    """A ``torch.device`` from ``"auto"``, ``"cpu"``, ``"cuda:0"``... or a device.

    Raises
    ------
    ValueError
        If the device asked for is not available.
    """
    from ..models.checkpoint import resolve_device

    # resolve_device refuses devices that are not there, in plain words.
    return resolve_device("auto" if device is None else device)[0]


def model_device(model: torch.nn.Module) -> torch.device:
    import torch

    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


# Frozen TorchScript versions of models, per input shape, valid while the weights are unchanged.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _weights_fingerprint(model) -> tuple:
    # In-place updates (an optimizer step, BatchNorm statistics) bump a tensor's _version.
    return tuple((t.data_ptr(), t._version) for t in itertools.chain(model.parameters(), model.buffers()))


def compiled_for_shape(model, shape: tuple[int, ...]):
    """``model`` traced at input ``shape``, frozen and optimised for CPU inference.

    Freezing folds BatchNorm into the convolutions and fuses activations
    (about a third less CPU time for the default network). Compiling costs a
    few seconds per shape, so the result is cached for the model until its
    weights change.
    """
    import torch

    fingerprint = _weights_fingerprint(model)
    entry = _COMPILED.get(model)
    if entry is None or entry[0] != fingerprint:
        entry = _COMPILED[model] = (fingerprint, {})
    cache = entry[1]
    if shape not in cache:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # tracer and deprecation warnings
            traced = torch.jit.trace(model.eval(), torch.zeros(shape), check_trace=False)
            cache[shape] = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
    return cache[shape]


# The zooms of the Segment panel's zoom box and `segment --tta-zoom`
# (experiments.md step 14: chosen on dev C among sets of 3 and 5 zooms).
TTA_ZOOMS = (0.8, 1.0, 1.25)


def check_tta_zooms(tta_zooms: Any) -> tuple[float, ...]:
    """``tta_zooms`` as a tuple of positive floats; None gives ``(1.0,)``."""
    if tta_zooms is None:
        return (1.0,)
    try:
        factors = tuple(float(v) for v in tta_zooms)
    except (TypeError, ValueError):
        raise ValueError(f"tta_zooms must be a sequence of numbers, got {tta_zooms!r}") from None
    if not factors or not all(0.25 <= v <= 4.0 for v in factors):
        raise ValueError(f"tta_zooms must be factors between 0.25 and 4, got {tta_zooms!r}")
    return factors


class TileRunner:
    """Turns batches of normalised tiles into class probabilities.

    On CUDA it runs in channels_last with bf16 (or fp16) autocast; on the CPU
    in float32. Always under ``torch.inference_mode()``.

    Parameters
    ----------
    model : torch.nn.Module
        Maps float32 ``(N, 3, H, W)`` to logits ``(N, C, H, W)``; put in eval mode.
    loss : str
        The model's loss (``ModelConfig.loss``), which decides how logits
        become probabilities.
    device : str or torch.device, optional
        Move the model there; None keeps it where it is.
    amp : bool
        Mixed precision on CUDA (ignored on the CPU).
    optimize : bool
        On the CPU, run a frozen, optimised trace of the network per tile
        shape (:func:`compiled_for_shape`): faster once compiled, so it pays
        off over many tiles or images of one size.
    tta : bool
        Test-time augmentation: average the probabilities over the 8 flips
        and quarter turns of each tile (8x the network time).
    tta_zooms : sequence of float, optional
        Also average over the tile zoomed by each factor (bilinear, antialiased
        when shrinking), its probabilities zoomed back: nuclei seen at several
        sizes around the working scale (``len(tta_zooms)`` x the network
        time, times 8 with ``tta``). None or ``(1,)``: one scale.
    """

    def __init__(
        self, model, loss: str, device: Any = None, amp: bool = True, optimize: bool = False,
        tta: bool = False, tta_zooms: Any = None,
    ):  # fmt: skip
        import torch

        from ..models.checkpoint import logits_to_probabilities
        from ..models.device import cuda_bf16_supported

        self.device = model_device(model) if device is None else pick_device(device)
        self.model = model.to(self.device).eval()
        self.loss = loss
        # Tiles start on multiples of the network's stride: the pixel grid of the whole image.
        self.align = max(1, int(getattr(model, "input_multiple", 1)))
        self._to_probabilities = logits_to_probabilities
        self.cuda = self.device.type == "cuda"
        self.amp_dtype = None
        if amp and self.cuda:
            self.amp_dtype = torch.bfloat16 if cuda_bf16_supported(self.device) else torch.float16
        # channels_last is faster on CUDA and, for this network, 1.3-2x on the CPU too.
        self.channels_last = self.device.type in ("cuda", "cpu")
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimize = optimize and self.device.type == "cpu"
        self.tta = bool(tta)
        self.tta_zooms = check_tta_zooms(tta_zooms)

    def default_batch_size(self) -> int:
        return 8 if self.cuda else 2

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """float32 ``(N, 3, h, w)`` tiles -> float32 ``(N, 3, h, w)`` probabilities."""
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
            x = x.to(self.device, non_blocking=True)
            probabilities = 0
            for zoom in self.tta_zooms:
                if zoom == 1.0:
                    probabilities += self._flipped_probabilities(x)
                    continue
                size = tuple(max(1, round(n * zoom)) for n in x.shape[-2:])
                view = torch.nn.functional.interpolate(
                    x, size=size, mode="bilinear", align_corners=False, antialias=zoom < 1
                )
                p = self._flipped_probabilities(view)
                probabilities += torch.nn.functional.interpolate(
                    p, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False, antialias=zoom > 1
                )
            if len(self.tta_zooms) > 1:
                probabilities /= len(self.tta_zooms)
            return probabilities.cpu().numpy().astype(np.float32, copy=False)

    def _flipped_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        if not self.tta:
            return self._probabilities(x)
        # The dihedral group of the square: 4 quarter turns, each also mirrored.
        probabilities = 0
        for turns, mirror in itertools.product(range(4), (False, True)):
            view = torch.rot90(x.flip(-1) if mirror else x, turns, dims=(-2, -1))
            p = torch.rot90(self._probabilities(view), -turns, dims=(-2, -1))
            probabilities += p.flip(-1) if mirror else p
        return probabilities / 8

    def _probabilities(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.amp_dtype is not None:
            with torch.autocast("cuda", dtype=self.amp_dtype):
                logits = self.model(x)
        elif self.optimize:
            logits = compiled_for_shape(self.model, tuple(x.shape))(x)
        else:
            logits = self.model(x)
        if logits.shape[-2:] != x.shape[-2:]:
            raise RuntimeError(
                f"the model returned logits of shape {tuple(logits.shape)} for input "
                f"{tuple(x.shape)}; it must keep the input's size"
            )
        return self._to_probabilities(logits.float(), self.loss)
