"""Reading and checking weights without ever running code from a file.

safetensors files hold raw tensors only. A torch file (told by its content,
not its name) is read with ``torch.load(weights_only=True)``, whose unpickler
accepts tensors and plain containers and refuses everything else, so a crafted
pickle is rejected before any of its code runs. Errors name the file and what
is wrong.

torch is imported inside functions: importing this module is light.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# State dicts saved by training scripts often nest the weights under one of these keys.
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net")
# torch.nn.DataParallel / DistributedDataParallel save every key under the wrapper's attribute.
_WRAPPER_PREFIX = "module."


class ModelLoadError(ValueError):
    """A checkpoint or model directory is missing, unsafe, or does not fit its architecture."""


class WeightsNote(UserWarning):
    """How a weights file was read, where it held more than one candidate or a wrapper's prefix."""


def state_dict_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 of a state dict's contents: names, dtypes, shapes and bytes, keys sorted.

    Independent of the file format, so the same weights in a directory, a single
    safetensors file or in memory have the same identity.
    """
    import torch

    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        # Raw bytes via a uint8 view: works for every dtype (bf16 has no numpy twin).
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read weights safely: safetensors, or a torch file with ``weights_only=True``.

    The file's first bytes tell which it is (:func:`weights_format`), whatever its name.

    Returns
    -------
    state_dict : dict of str to torch.Tensor
    metadata : dict of str to str
        The safetensors metadata (empty for torch files).

    Raises
    ------
    ModelLoadError
        If the file is missing or unreadable, or would execute code when unpickled.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
        size = path.stat().st_size
    except OSError as err:
        raise ModelLoadError(f"{path}: cannot be read ({err.strerror or err})") from None
    if not head:
        raise ModelLoadError(f"{path}: empty file (0 bytes)")
    kind = weights_format(head, size)
    if kind == "safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                metadata = fh.metadata() or {}
                state = {k: fh.get_tensor(k) for k in fh.keys()}
        except (SafetensorError, OSError, ValueError) as err:
            raise ModelLoadError(f"{path}: not a readable safetensors file ({err})") from None
        return _strip_wrapper_prefix(state, path), metadata
    if kind is None:  # a text file renamed .pt makes torch's unpickler fail with a bare KeyError
        if path.suffix.lower() == ".safetensors":
            raise ModelLoadError(
                f"{path}: not a readable safetensors file (it does not open with a safetensors header)"
            )
        raise ModelLoadError(f"{path}: not a PyTorch weights file (nor a safetensors file)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "pickle protocol 4" notes from torch
            # an open file, not the path: recent torch hands a path named .safetensors to safetensors
            with open(path, "rb") as fh:
                obj = torch.load(fh, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ModelLoadError(
            f"{path}: refused: this file holds Python objects that would run code when loaded, "
            f"not only tensors ({_unpickler_reason(err)}). Only plain state dicts are read "
            "(torch.load with weights_only=True); convert it to safetensors in a trusted environment."
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise ModelLoadError(
            f"{path}: not a readable PyTorch weights file ({str(err) or type(err).__name__})"
        ) from None
    except (KeyError, IndexError, TypeError, AttributeError, UnicodeDecodeError) as err:
        # A damaged pickle: torch's unpickler fails on an opcode or a record it does not know.
        raise ModelLoadError(
            f"{path}: not a PyTorch weights file (damaged or another format: {type(err).__name__})"
        ) from None
    return _strip_wrapper_prefix(_unnest_state_dict(obj, path), path), {}


def weights_format(head: bytes, size: int) -> str | None:
    """``"safetensors"``, ``"torch"`` or None: what a weights file holds, from its first 9 bytes.

    The content decides, not the name (``.SAFETENSORS``, a ``.bin`` download).
    safetensors opens with its header's length (8 bytes, little-endian) and the
    header's ``{``; torch files are zip archives (``torch.save``) or pickles
    (protocol 2+ opens with 0x80). ``size`` is the file's size in bytes.
    """
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= size - 8:
        return "safetensors"
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        return "torch"
    return None


def _unpickler_reason(err: Exception) -> str:
    # torch's message is long advice; keep the line that names the refused object.
    lines = str(err).splitlines()
    for index, line in enumerate(lines):
        if "WeightsUnpickler error" in line:
            reason = line.split("error:", 1)[1].split(". Please", 1)[0].strip()
            # Some reasons follow on the next non-empty line ("Unsupported operand 99").
            following = [rest.strip() for rest in lines[index + 1 : index + 3] if rest.strip()]
            return reason or (following[0] if following else type(err).__name__)
    return type(err).__name__


def _unnest_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    import torch

    if isinstance(obj, dict):
        for key in _NESTED_KEYS:
            if isinstance(obj.get(key), dict):
                others = [k for k, v in obj.items() if k != key and _tensors_only(v)]
                if others:  # e.g. a timm checkpoint's state_dict_ema beside state_dict
                    warnings.warn(
                        f"{path}: took the weights under {key!r}; the file also holds {others} "
                        "(for those, save that entry alone as a state dict and import it)",
                        WeightsNote,
                        stacklevel=3,
                    )
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ModelLoadError(f"{path}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    not_tensors = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ModelLoadError(f"{path}: not a state dict: entries {not_tensors[:5]} are not tensors")
    return dict(obj)


def _tensors_only(value: Any) -> bool:
    import torch

    return (
        isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())
    )


def _strip_wrapper_prefix(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Drop a ``module.`` prefix that every key has (a DataParallel checkpoint), with a note."""
    if not state or not all(key.startswith(_WRAPPER_PREFIX) for key in state):
        return state
    warnings.warn(
        f"{path}: every key starts with {_WRAPPER_PREFIX!r} (saved from torch DataParallel); "
        "the prefix was removed",
        WeightsNote,
        stacklevel=3,
    )
    return {key[len(_WRAPPER_PREFIX) :]: value for key, value in state.items()}


def load_weights_into(
    model: torch.nn.Module, state_dict: dict[str, torch.Tensor], what: str, arch: str
) -> None:
    """``model.load_state_dict(strict=True)`` with an error that says what does not fit.

    Raises
    ------
    ModelLoadError
        Naming missing keys, unexpected keys and shape mismatches.
    """
    expected = model.state_dict()
    # Old torchvision and converted Keras weights lack BatchNorm's step counters; torch loads them anyway.
    counters = {
        k: v for k, v in expected.items() if k.endswith("num_batches_tracked") and k not in state_dict
    }
    state_dict = {**state_dict, **counters}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s) (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) (e.g. {', '.join(unexpected[:3])})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es) (e.g. {'; '.join(mismatched[:3])})")
    if problems:
        hint = " Is it a checkpoint of another architecture?" if missing or unexpected else ""
        if any(key.startswith(_WRAPPER_PREFIX) for key in unexpected):
            hint = (
                f" Keys starting with {_WRAPPER_PREFIX!r} come from a torch DataParallel wrapper: "
                "save the wrapped model's state_dict (model.module.state_dict())."
            )
        raise ModelLoadError(
            f"{what}: the weights do not fit architecture {arch!r}: {'; '.join(problems)}.{hint}"
        )
    model.load_state_dict(state_dict, strict=True)
