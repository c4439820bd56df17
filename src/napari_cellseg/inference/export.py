"""Export a model to TorchScript or ONNX, for use outside the plugin.

The exported network takes float32 ``(N, 3, H, W)`` normalised images of any
size (not only multiples of 32) and returns ``(N, 3, H, W)`` probabilities of
background, boundary and interior (the logits-to-probabilities step of the
model's loss is built in). Normalisation is not: it needs whole-image
percentiles, which a tile cannot know; nor is the object scale (resampling by
``object_diameter / diameter``, the diameter estimated per image by the plugin
when the model's ``default_diameter`` is 0). Their rules and parameters travel with the
export, embedded (TorchScript extra file ``napari_cellseg.json``, ONNX
``metadata_props`` key ``napari_cellseg``) and in a JSON sidecar
named after the whole file (``cells.pt``: ``cells.pt.json``): the model config, the normalisation config, the class names
and the input/output contract.

The network is compiled with ``torch.jit.script`` so that input-size dependent
padding stays dynamic. Where scripting fails (as for the U-Net decoder) the
network is traced at a multiple of its stride, where its graph does not depend
on the size, inside a scripted shell that pads and crops like the network does
(:class:`PaddedProbabilityNet`). Either way the export is refused unless it
reproduces the model at two input sizes, one not a multiple of 32.

This module imports torch at import time: import it lazily.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from ..classes import CLASS_NAMES
from ..config import atomic_write_bytes, is_whole_number
from .export_files import (  # noqa: F401  (the loaders are re-exported: part of this module's API)
    EXTRA_FILE,
    FORMATS,
    METADATA_KEY,
    SUFFIXES,
    ExportError,
    format_of,
    load_torchscript,
    read_onnx_metadata,
    run_onnx_reference,
    sidecar_path,
)

# Below opset 11 ONNX cannot pad by an input-dependent amount, which any export here needs.
MIN_OPSET = 11
# Exports are checked at these sizes: one multiple of 32, one not.
CHECK_SIZES = ((64, 64), (70, 90))
TOLERANCE = 1e-4


@dataclass
class ExportResult:
    model: Path
    sidecar: Path
    method: str  # "script" or "trace"
    max_error: float  # largest probability difference to the eager model at CHECK_SIZES


class ProbabilityNet(nn.Module):
    """The segmentation network followed by its logits-to-probabilities step."""

    def __init__(self, net: nn.Module, loss: str):
        super().__init__()
        if loss not in ("weighted-ce", "weighted-bce"):
            raise ExportError(f"unknown loss {loss!r}: expected 'weighted-ce' or 'weighted-bce'")
        self.net = net
        self.sigmoid_outputs = loss == "weighted-bce"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        if self.sigmoid_outputs:
            return bce_probabilities(logits)
        return torch.softmax(logits, dim=1)


def bce_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """``(N, 2, H, W)`` foreground/boundary logits -> ``(N, 3, H, W)`` class probabilities.

    Mirrors :func:`napari_cellseg.models.checkpoint.logits_to_probabilities` in
    TorchScript-compatible form; :func:`export_model` checks they agree.
    """
    foreground = torch.sigmoid(logits[:, 0:1])
    boundary = torch.minimum(torch.sigmoid(logits[:, 1:2]), foreground)
    return torch.cat([1.0 - foreground, boundary, foreground - boundary], dim=1)


def opset_range() -> tuple[int, int]:
    """The ONNX opsets :func:`export_model` can write with this torch: ``(lowest, highest)``."""
    from torch.onnx import _constants

    # torch's TorchScript-based exporter: its highest opset (a private constant, hence the fallback).
    return MIN_OPSET, int(getattr(_constants, "ONNX_MAX_OPSET", 20))


def check_opset(opset: Any) -> int:
    """``opset`` if this torch can export it, else :class:`ExportError` giving the range."""
    low, high = opset_range()
    if not is_whole_number(opset) or not low <= opset <= high:
        raise ExportError(
            f"--opset must be between {low} and {high} (torch {torch.__version__}), got {opset}"
        )
    return opset


NORMALIZATION_RULE = (
    "normalize_image: per image (never per tile), take the low/high percentiles of the whole "
    "image (jointly over channels unless per_channel), x = clip((pixel - low) / (high - low), "
    "0, 1), grey to 3 equal channels, then (x - mean) / std"
)
SCALE_RULE = (
    "; then object scale: resample the normalised (3, H, W) image by factor = object_diameter / "
    "diameter, diameter being the median nucleus diameter of the image in px, to "
    "(round(H * factor), round(W * factor)) (area averaging when shrinking, bilinear when "
    "enlarging: cv2 INTER_AREA / INTER_LINEAR, napari_cellseg.inference.scale."
    "resize_channels_first), run the network, and resample the probabilities back to (H, W) "
    "by the same rule"
)
DIAMETER_RULES = {
    None: "; default_diameter None: the plugin uses each image at its own scale unless given a diameter",
    0: (
        "; default_diameter 0: the plugin estimates each image's diameter (napari_cellseg.inference."
        "segment.iter_estimate_diameter: the median equivalent diameter of the nuclei the network "
        "and watershed find on a central crop, refined at the estimated scale; segment_image(..., "
        "diameter=0).scale_factor is the factor it chose)"
    ),
}


def input_rule(config) -> str:
    """How an image becomes the exported network's input, as the plugin prepares it."""
    object_diameter = getattr(config, "object_diameter", None)
    if object_diameter is None:
        return NORMALIZATION_RULE + " (no object_diameter: the image is used at its own scale)"
    default = getattr(config, "default_diameter", None)
    if default is None or default == 0:
        diameter_rule = DIAMETER_RULES[default]
    else:
        diameter_rule = f"; default_diameter {default}: the plugin assumes nuclei of {default} px"
    return NORMALIZATION_RULE + SCALE_RULE + diameter_rule


def export_metadata(config, fmt: str) -> dict[str, Any]:
    """What a user of the exported file needs to know, as a JSON-able dict."""
    normalization = config.normalization
    return {
        "format": fmt,
        "napari_cellseg_version": __version__,
        "input": {
            "name": "image",
            "dtype": "float32",
            "shape": ["N", 3, "H", "W"],
            "rule": input_rule(config),
        },
        "output": {
            "name": "probabilities",
            "dtype": "float32",
            "shape": ["N", 3, "H", "W"],
            "classes": list(CLASS_NAMES),
        },
        "normalization": normalization.to_dict() if hasattr(normalization, "to_dict") else normalization,
        # the network's training scale: images are resampled by object_diameter / diameter
        "object_diameter": getattr(config, "object_diameter", None),
        "default_diameter": getattr(config, "default_diameter", None),
        "watershed": getattr(config, "watershed", None),
        "model_config": config.to_dict(),
    }


class PaddedProbabilityNet(nn.Module):
    """Pads any input to a multiple of the network's stride, runs a traced core, crops back.

    A trace records the padding and cropping of the input size it saw; this
    scripted shell does them for every size instead, exactly as
    ``CellSegNet`` does (reflect, bottom/right; replicate for tiny inputs).
    At multiples of the stride the traced core is size-independent.
    """

    def __init__(self, core: nn.Module, multiple: int, sigmoid_outputs: bool):
        super().__init__()
        self.core = core
        self.multiple = multiple
        self.sigmoid_outputs = sigmoid_outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height = x.shape[2]
        width = x.shape[3]
        pad_h = (self.multiple - height % self.multiple) % self.multiple
        pad_w = (self.multiple - width % self.multiple) % self.multiple
        if pad_h > 0 or pad_w > 0:
            if pad_h < height and pad_w < width:
                x = F.pad(x, [0, pad_w, 0, pad_h], mode="reflect")
            else:
                x = F.pad(x, [0, pad_w, 0, pad_h], mode="replicate")
        logits = self.core(x)[:, :, :height, :width]
        if self.sigmoid_outputs:
            return bce_probabilities(logits)
        return torch.softmax(logits, dim=1)


def _compile(reference: ProbabilityNet, multiple: int) -> tuple[Any, str]:
    """Script the whole network, or script a padding shell around a traced core."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.jit.script(reference), "script"
        except Exception:  # most networks do not script: trace at a multiple of the stride
            pass
        example = torch.zeros(1, 3, 2 * multiple, 2 * multiple)
        core = torch.jit.trace(reference.net, example, check_trace=False)
        shell = PaddedProbabilityNet(core, multiple, reference.sigmoid_outputs)
        return torch.jit.script(shell), "trace"


def _max_error(reference: nn.Module, candidate, sizes=CHECK_SIZES) -> float:
    worst = 0.0
    with torch.inference_mode():
        for height, width in sizes:
            x = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(height))
            expected = reference(x)
            got = candidate(x)
            if tuple(got.shape) != tuple(expected.shape):
                return float("inf")
            worst = max(worst, float((got - expected).abs().max()))
    return worst


def export_model(
    model: nn.Module,
    config,
    out: str | os.PathLike,
    fmt: str | None = None,
    *,
    opset: int = 17,
) -> ExportResult:
    """Export ``model`` to ``out`` as TorchScript or ONNX, with a ``.json`` sidecar.

    Parameters
    ----------
    model : torch.nn.Module
        The segmentation network (logits at the input's size).
    config : ModelConfig
        Its config; ``loss`` decides the probability step, the rest is metadata.
    out : path
        File to write (``.pt`` / ``.onnx`` advised). The sidecar is
        ``out`` with ``.json`` appended (:func:`sidecar_path`).
    fmt : {"torchscript", "onnx"}, optional
        Default: the format ``out``'s suffix stands for (``.onnx``: ONNX),
        TorchScript for other suffixes. A format that contradicts the suffix
        (TorchScript into ``cells.onnx``) is refused.
    opset : int
        ONNX opset version.

    Returns
    -------
    ExportResult
        Paths, the compile method, and the largest probability difference to
        the eager model at two input sizes (one not a multiple of 32).

    Raises
    ------
    ExportError
        Unknown format, one the suffix contradicts, or the compiled network
        does not reproduce the model.
    """
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a file path, got {type(out).__name__}")
    out = Path(out)
    implied = format_of(out)
    if fmt is None:
        fmt = implied or "torchscript"
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {FORMATS}")
    if implied is not None and implied != fmt:
        # A TorchScript zip named .onnx fails in every ONNX runtime with a parse error.
        raise ExportError(
            f"{out}: fmt={fmt!r} but the suffix {out.suffix} stands for {implied}; name it "
            f"{out.with_suffix(SUFFIXES[fmt][0]).name} or pass fmt={implied!r}"
        )
    if out.suffix.lower() == ".json":
        raise ExportError(f"{out}: .json is the sidecar's suffix; give a .pt or .onnx file")
    if fmt == "onnx":
        check_opset(opset)
    reference = ProbabilityNet(model.cpu().float().eval(), config.loss).eval()
    _check_probability_step(model, config, reference)
    multiple = int(getattr(model, "input_multiple", 32))
    compiled, method = _compile(reference, multiple)
    error = _max_error(reference, compiled)
    if not error <= TOLERANCE:
        raise ExportError(
            f"the exported network ({method}) does not reproduce the model at input sizes "
            f"{CHECK_SIZES} (max difference {error:.3g})"
        )
    example = torch.zeros(1, 3, *CHECK_SIZES[1])
    metadata = export_metadata(config, fmt)
    text = json.dumps(metadata, indent=2)
    if fmt == "torchscript":
        _save_torchscript(compiled, out, text)
    else:
        _save_onnx(compiled, example, out, text, opset)
    sidecar = _write(sidecar_path(out), (text + "\n").encode("utf-8"))
    return ExportResult(out, sidecar, method, error)


def _write(path: Path, data: bytes) -> Path:
    try:
        return atomic_write_bytes(path, data)
    except OSError as err:  # full disk, no permission, a folder in the way
        raise ExportError(f"cannot write {path}: {err.strerror or err}") from None


def _check_probability_step(model: nn.Module, config, reference: ProbabilityNet) -> None:
    """The built-in probability step must match the package's ``logits_to_probabilities``."""
    from ..models.checkpoint import logits_to_probabilities

    with torch.inference_mode():
        x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        expected = logits_to_probabilities(model(x), config.loss)
        error = float((reference(x) - expected).abs().max())
    if error > TOLERANCE:
        raise ExportError(
            f"the exported probability step for loss {config.loss!r} differs from "
            f"logits_to_probabilities by {error:.3g}; update ProbabilityNet"
        )


def _save_torchscript(compiled, out: Path, text: str) -> None:
    import io

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still the format asked
        torch.jit.save(compiled, buffer, _extra_files={EXTRA_FILE: text})
    _write(out, buffer.getvalue())


def _save_onnx(compiled, example: torch.Tensor, out: Path, text: str, opset: int) -> None:
    import io

    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                compiled, (example,), buffer, dynamo=False, opset_version=opset,
                input_names=["image"], output_names=["probabilities"],
                dynamic_axes={"image": {0: "N", 2: "H", 3: "W"}, "probabilities": {0: "N", 2: "H", 3: "W"}},
            )  # fmt: skip
        except Exception as err:  # torch's exporter raises many types, with pages of graph
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ExportError(f"ONNX export at opset {opset} failed: {first[:300]}") from None
    proto = onnx.load_model_from_string(buffer.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, text
    proto.doc_string = "napari-cellseg nucleus segmentation: normalised image -> class probabilities"
    onnx.checker.check_model(proto)
    _write(out, proto.SerializeToString())
