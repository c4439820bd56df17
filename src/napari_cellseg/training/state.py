"""Resumable training state, stored without pickle.

A training state (optimizer, scheduler, AMP scaler, RNG states, sampler
position, history) is a nested structure of dicts, lists, tuples, numbers,
strings and tensors. :func:`pack_state` splits it into a JSON tree, where each
tensor is replaced by a reference, and a flat ``{name: tensor}`` mapping that
safetensors stores. Loading never unpickles anything: safetensors holds raw
tensors, JSON holds the rest.

On disk (inside the ``last/`` model directory)::

    training_state.safetensors   the tensors (optimizer moments, RNG states)
    training_state.json          everything else, with {"__tensor__": name} references

Directories are replaced atomically with :func:`replace_dir`: the new
directory is written completely under a temporary name and swapped in by two
renames; :func:`recover_dir` repairs the one window (a crash between the two
renames) by putting the previous complete directory back.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import atomic_write_bytes, atomic_write_text, is_whole_number

if TYPE_CHECKING:
    import torch

STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
STATE_FORMAT = 1

_TENSOR, _TUPLE, _DICT = "__tensor__", "__tuple__", "__dict__"


class TrainingStateError(ValueError):
    """A stored training state is missing, incomplete or not what was expected."""


def pack_state(obj: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Split ``obj`` into a JSON-able tree and a flat dict of tensors.

    Tuples and dicts with non-string keys (optimizer state is keyed by int)
    are tagged so that :func:`unpack_state` restores them exactly.

    Raises
    ------
    TypeError
        If ``obj`` holds a value that is neither JSON-able nor a tensor.
    """
    import torch

    tensors: dict[str, torch.Tensor] = {}

    def encode(value: Any, where: str) -> Any:
        if isinstance(value, torch.Tensor):
            name = f"t{len(tensors)}"
            tensors[name] = value.detach().to("cpu", copy=True).contiguous()
            return {_TENSOR: name}
        if isinstance(value, np.generic):
            return value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, tuple):
            return {_TUPLE: [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in value):
                return {k: encode(v, f"{where}.{k}") for k, v in value.items()}
            return {_DICT: [[encode(k, where), encode(v, f"{where}.{k}")] for k, v in value.items()]}
        raise TypeError(f"{where}: cannot store a {type(value).__name__} in a training state")

    return encode(obj, "state"), tensors


def unpack_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`pack_state`."""

    def decode(value: Any) -> Any:
        if isinstance(value, list):
            return [decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if _TENSOR in value:
            name = value[_TENSOR]
            if name not in tensors:
                raise TrainingStateError(f"tensor {name!r} is referenced but not stored")
            return tensors[name]
        if _TUPLE in value:
            return tuple(decode(v) for v in value[_TUPLE])
        if _DICT in value:
            return {_hashable(decode(k)): decode(v) for k, v in value[_DICT]}
        return {k: decode(v) for k, v in value.items()}

    return decode(tree)


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def save_training_state(directory: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` as ``training_state.safetensors`` + ``training_state.json``."""
    from safetensors.torch import save

    directory = Path(directory)
    tree, tensors = pack_state(state)
    atomic_write_bytes(directory / STATE_TENSORS, save(tensors))
    payload = {"format": STATE_FORMAT, "state": tree}
    atomic_write_text(directory / STATE_JSON, json.dumps(payload, indent=1) + "\n")


def load_training_state(directory: str | os.PathLike) -> dict[str, Any]:
    """Read a state written by :func:`save_training_state` (never unpickles).

    Raises
    ------
    TrainingStateError
        If a file is missing or unreadable, naming it.
    """
    from safetensors.torch import load

    directory = Path(directory)
    json_path, tensor_path = directory / STATE_JSON, directory / STATE_TENSORS
    for path in (json_path, tensor_path):
        if not path.is_file():
            raise TrainingStateError(f"{path}: missing; {directory} holds no resumable training state")
    try:
        payload = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise TrainingStateError(f"{json_path}: not readable JSON ({err})") from None
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise TrainingStateError(f"{json_path}: not a training state of format {STATE_FORMAT}")
    if "state" not in payload:
        raise TrainingStateError(f"{json_path}: damaged training state: it has no 'state'")
    try:
        tensors = load(tensor_path.read_bytes())
    except Exception as err:  # safetensors raises its own error types
        raise TrainingStateError(f"{tensor_path}: not a readable safetensors file ({err})") from None
    try:
        return unpack_state(payload["state"], tensors)
    except TrainingStateError as err:
        raise TrainingStateError(f"{json_path}: damaged training state: {err}") from None
    except (TypeError, ValueError) as err:  # e.g. a tagged tuple or mapping of the wrong shape
        raise TrainingStateError(f"{json_path}: damaged training state ({err})") from None


# --- a training run's state ----------------------------------------------


def _is_count(value: Any) -> bool:
    return is_whole_number(value) and value >= 0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# What resuming reads from a stored position, and the test of each value.
_POSITION = {
    "global_step": (_is_count, "a whole number >= 0"),
    "epoch_loss_sum": (_is_number, "a number"),
    "epoch_steps": (_is_count, "a whole number >= 0"),
    "best_score": (lambda v: v is None or _is_number(v), "a number or null"),
    "best_epoch": (_is_count, "a whole number >= 0"),
    "elapsed_s": (_is_number, "a number"),
    "history": (lambda v: isinstance(v, list), "a list"),
}


def resume_problem(state: Any, total_steps: int) -> str | None:
    """What makes a training run's loaded state unusable for resuming (None when it is whole).

    Checks what the engine reads (the step position, the optimizer, scheduler,
    scaler and RNG parts) so that a damaged file is named before any is used.
    """
    if not isinstance(state, dict):
        return f"'state' is a {type(state).__name__}, not a mapping"
    for key in ("position", "optimizer", "scheduler", "rng", "split_hash"):
        if key not in state:
            return f"'state' has no {key!r}"
    for key in ("position", "optimizer", "scheduler", "rng"):
        if not isinstance(state[key], dict):
            return f"'state.{key}' is {state[key]!r}, not a mapping"
    position = state["position"]
    for key, (valid, kind) in _POSITION.items():
        if key not in position:
            return f"'state.position' has no {key!r}"
        if not valid(position[key]):
            return f"'state.position.{key}' is {position[key]!r}, not {kind}"
    if position["global_step"] > total_steps:
        return (
            f"'state.position.global_step' is {position['global_step']}, past the run's {total_steps} steps"
        )
    for k, entry in enumerate(position["history"]):
        if not (
            isinstance(entry, dict) and _is_count(entry.get("epoch")) and isinstance(entry.get("dev"), dict)
        ):
            return f"'state.position.history[{k}]' is {entry!r}, not an epoch's record (epoch, dev, ...)"
    if position.get("last_lr") is not None and not _is_number(position["last_lr"]):
        return f"'state.position.last_lr' is {position['last_lr']!r}, not a number"
    if not isinstance(state["optimizer"].get("state"), dict) or not isinstance(
        state["optimizer"].get("param_groups"), list
    ):
        return "'state.optimizer' is not an optimizer's state (its 'state' and 'param_groups')"
    missing = [k for k in ("torch", "numpy", "python") if k not in state["rng"]]
    if missing:
        return f"'state.rng' has no {missing[0]!r}"
    if state.get("scaler") is not None and not isinstance(state["scaler"], dict):
        return f"'state.scaler' is {state['scaler']!r}, not a mapping or null"
    if state["split_hash"] is not None and not isinstance(state["split_hash"], str):
        return f"'state.split_hash' is {state['split_hash']!r}, not a string or null"
    world = state.get("world_size")  # absent from states written before it was kept
    if world is not None and not (_is_count(world) and world >= 1):
        return f"'state.world_size' is {world!r}, not a whole number >= 1"
    return None


# --- RNG --------------------------------------------------------------------


def capture_rng_state() -> dict[str, Any]:
    """The torch (CPU and CUDA), numpy-global and Python RNG states."""
    import torch

    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state_to_tree(np.random.get_state()),  # noqa: NPY002 (global state: third-party code)
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    import torch

    torch.set_rng_state(state["torch"])
    np.random.set_state(_numpy_state_from_tree(state["numpy"]))  # noqa: NPY002
    random.setstate(_python_state(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state_to_tree(state: tuple) -> tuple:
    name, keys, pos, has_gauss, cached = state
    return (name, keys.astype(np.int64).tolist(), int(pos), int(has_gauss), float(cached))


def _numpy_state_from_tree(tree: tuple) -> tuple:
    name, keys, pos, has_gauss, cached = tree
    return (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)


def _python_state(tree: Any) -> tuple:
    version, internal, gauss = tree
    return (version, tuple(internal), gauss)


# --- atomic directories -----------------------------------------------------


def _old_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.old")


def new_temp_dir(final: str | os.PathLike) -> Path:
    """A fresh, empty sibling of ``final`` to write into before :func:`replace_dir`."""
    final = Path(final)
    tmp = final.with_name(f".{final.name}.new")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def replace_dir(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Swap the complete directory ``tmp`` in as ``final``.

    ``final`` is renamed aside, ``tmp`` renamed to ``final``, then the old copy
    removed. Each rename is atomic, so at every instant either ``final`` or its
    ``.old`` copy is a complete directory (see :func:`recover_dir`).
    """
    tmp, final = Path(tmp), Path(final)
    old = _old_name(final)
    if old.exists():
        if final.exists():
            shutil.rmtree(old)
        else:  # a previous swap died between its renames
            old.rename(final)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def recover_dir(final: str | os.PathLike) -> Path:
    """Restore ``final`` if a crash in :func:`replace_dir` left only its ``.old`` copy."""
    final = Path(final)
    old = _old_name(final)
    if not final.exists() and old.is_dir():
        old.rename(final)
    return final
