"""The model segmentation uses now, in this process and across restarts.

Fine-tune makes the model it trained the current one when a run ends;
Segment and Review read it. The choice lives in this process (listeners are
told when it changes) and in the napari-cellseg settings file,
``$XDG_CONFIG_HOME/napari-cellseg/settings.json`` (``~/.config/...`` when the
variable is unset), so it survives a restart. Without a choice, the bundled
default model is the current one once it ships.

The settings file is a JSON object shared by the whole package: writes merge
into it (keys this module does not know are kept) and are atomic.

No torch, Qt or napari here.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import atomic_write_text

logger = logging.getLogger(__name__)

SETTINGS_DIR = "napari-cellseg"
SETTINGS_FILE = "settings.json"
CURRENT_MODEL_KEY = "current_model"
NO_MODEL_HELP = (
    "no model available: train one in the Fine-tune panel (it becomes the current model when "
    "training ends), or choose a model folder (model.safetensors + config.json)"
)

_current: Path | None = None
_listeners: list[Callable[[Path | None], None]] = []


def settings_path() -> Path:
    """``$XDG_CONFIG_HOME/napari-cellseg/settings.json`` (``~/.config`` when unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / SETTINGS_DIR / SETTINGS_FILE


def read_settings() -> dict[str, Any]:
    """The settings file as a dict; empty when missing or unreadable (a warning is logged)."""
    path = settings_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        logger.warning("%s: ignored, not readable JSON (%s)", path, err)
        return {}
    if not isinstance(data, dict):
        logger.warning("%s: ignored, expected a JSON object, got %s", path, type(data).__name__)
        return {}
    return data


def update_settings(**values: Any) -> Path:
    """Merge ``values`` into the settings file (atomically); a value of None removes its key."""
    data = read_settings()
    for key, value in values.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return atomic_write_text(settings_path(), json.dumps(data, indent=2, sort_keys=True) + "\n")


def is_model_dir(directory: str | os.PathLike | None) -> bool:
    """Whether ``directory`` holds ``config.json`` and ``model.safetensors``."""
    if directory is None:
        return False
    from ..models.checkpoint import missing_model_files

    return Path(directory).is_dir() and not missing_model_files(directory)


def check_model_dir(directory: str | os.PathLike) -> Path:
    """``directory`` as an absolute Path, or ``ValueError`` naming what is missing."""
    from ..models.checkpoint import model_dir_problem

    path = Path(directory).expanduser()
    problem = model_dir_problem(path)
    if problem:
        raise ValueError(problem)
    return path.resolve()


def set_current_model(directory: str | os.PathLike, *, persist: bool = True) -> Path:
    """Make ``directory`` the model segmentation uses; tell the listeners.

    Parameters
    ----------
    directory : path
        A model folder (``model.safetensors`` + ``config.json``).
    persist : bool
        Also store it in the settings file (kept after a restart).

    Returns
    -------
    pathlib.Path
        The absolute model folder.

    Raises
    ------
    ValueError
        If ``directory`` is not a model folder.
    """
    global _current
    path = check_model_dir(directory)
    _current = path
    if persist:
        try:
            update_settings(**{CURRENT_MODEL_KEY: str(path)})
        except OSError as err:  # a read-only home must not stop segmentation
            logger.warning("could not store the current model in %s: %s", settings_path(), err)
    _notify(path)
    return path


def clear_current_model(*, persist: bool = True) -> None:
    """Forget the chosen model (the bundled default, when shipped, becomes current)."""
    global _current
    _current = None
    if persist:
        try:
            update_settings(**{CURRENT_MODEL_KEY: None})
        except OSError as err:
            logger.warning("could not update %s: %s", settings_path(), err)
    _notify(get_current_model_dir())


def get_current_model_dir(*, default: bool = True) -> Path | None:
    """The current model folder, or None when there is none.

    Order: the one set in this process, the one stored in the settings file
    (if it is still a model folder), then the bundled default model when
    ``default`` is True and it is shipped.
    """
    if _current is not None and is_model_dir(_current):
        return _current
    stored = read_settings().get(CURRENT_MODEL_KEY)
    if isinstance(stored, str) and is_model_dir(stored):
        return Path(stored)
    if default:
        from ..inference.runtime import default_model_dir

        bundled = default_model_dir()
        if is_model_dir(bundled):
            return bundled
    return None


def is_bundled_default(directory: str | os.PathLike | None) -> bool:
    from ..inference.runtime import default_model_dir

    return directory is not None and Path(directory).resolve() == default_model_dir().resolve()


def add_listener(callback: Callable[[Path | None], None]) -> None:
    """Call ``callback(directory)`` whenever the current model changes (in this process)."""
    if callback not in _listeners:
        _listeners.append(callback)


def remove_listener(callback: Callable[[Path | None], None]) -> None:
    if callback in _listeners:
        _listeners.remove(callback)


def _notify(directory: Path | None) -> None:
    for callback in list(_listeners):
        try:
            callback(directory)
        except Exception:  # a closed widget must not break the others
            logger.exception("current-model listener %r failed", callback)


def describe_model(directory: str | os.PathLike | None) -> str:
    """One line about a model folder: its name, ``l``/``l_a``/``l_f`` and dev score.

    Reads only ``config.json``; says plainly when there is no model.
    """
    if directory is None:
        return NO_MODEL_HELP
    from ..models.checkpoint import TUNED_WATERSHED_METRICS, load_model_config
    from ..models.weights_io import ModelLoadError

    path = Path(directory)
    try:
        config = load_model_config(path)
    except ModelLoadError as err:
        return f"unusable model: {err}"
    name = "bundled default model" if is_bundled_default(path) else path.name
    text = f"{name} (l={config.transfer_layers}, l_a={config.new_layers}, l_f={config.frozen_layers}"
    metrics = config.metrics or {}
    tuned = _tuned_scores(metrics.get(TUNED_WATERSHED_METRICS))
    score, score_name = metrics.get("dev_score"), metrics.get("score_name")
    if tuned:
        text += f"; {tuned}"
    elif isinstance(score, int | float) and score_name:
        text += f"; dev {score_name} {score:.3f}"
    return text + ")"


def _tuned_scores(tuned: Any) -> str:
    """'dev C AP@0.5 0.684, DSB 0.369 with the tuned watershed' from ``tune-watershed``'s entry, or ''."""
    if not isinstance(tuned, dict):
        return ""
    ap, dsb = tuned.get("ap_50"), tuned.get("dsb_score")
    if not (isinstance(ap, int | float) and isinstance(dsb, int | float)):
        return ""
    where = " ".join(str(tuned[k]) for k in ("subset", "microscope") if tuned.get(k))
    return f"{where} AP@0.5 {ap:.3f}, DSB {dsb:.3f} with the tuned watershed".strip()


def model_watershed(directory: str | os.PathLike | None) -> dict[str, Any]:
    """The ``watershed`` settings stored in a model's config (empty when none or no model)."""
    if not is_model_dir(directory):
        return {}
    from ..models.checkpoint import load_model_config
    from ..models.weights_io import ModelLoadError

    try:
        return dict(load_model_config(directory).watershed or {})
    except ModelLoadError:
        return {}
