"""Configuration dataclasses that round-trip to JSON.

Every configuration in the package (normalisation, model, training, watershed)
is a dataclass deriving from :class:`JsonConfig`. Nested dataclasses, tuples and
lists are supported; unknown keys are refused so that a typo in a JSON file is
an error, not a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T", bound="JsonConfig")


class ConfigError(ValueError):
    """A configuration file or dictionary is not valid."""


def _from_value(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if value is None:
        return None
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _from_value(non_none[0], value, where)
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object, got {type(value).__name__}")
        return tp.from_dict(value, _where=where)
    if origin is tuple:
        if args and args[-1] is Ellipsis:
            return tuple(_from_value(args[0], v, where) for v in value)
        if args:
            return tuple(_from_value(a, v, where) for a, v in zip(args, value))
        return tuple(value)
    if origin is list:
        return [_from_value(args[0], v, where) for v in value] if args else list(value)
    if origin is dict:
        return {k: _from_value(args[1], v, where) for k, v in value.items()} if args else value
    if tp is float and isinstance(value, int):
        return float(value)
    return value


@dataclasses.dataclass
class JsonConfig:
    """Base class: ``to_dict``/``from_dict``, ``to_json``/``from_json``, ``save``/``load``."""

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any], *, _where: str | None = None) -> T:
        where = _where or cls.__name__
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(names)}")
        kwargs = {k: _from_value(hints[k], v, f"{where}.{k}") for k, v in data.items()}
        try:
            return cls(**kwargs)
        except TypeError as err:
            raise ConfigError(f"{where}: {err}") from None

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the config as JSON atomically."""
        return atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls: type[T], path: str | os.PathLike) -> T:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: file not found") from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: not valid JSON ({err})") from None
        try:
            return cls.from_dict(data, _where=str(path))
        except ConfigError:
            raise
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{path}: {err}") from None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``.

    A crash mid-write leaves the old file intact, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 files; give the usual permissions (0666 minus umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))
