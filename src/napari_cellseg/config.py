"""Configuration dataclasses that round-trip to JSON.

Every configuration in the package (normalisation, model, training, watershed)
is a dataclass deriving from :class:`JsonConfig`. Nested dataclasses, tuples and
lists are supported; unknown keys are refused so that a typo in a JSON file is
an error, not a silently ignored setting, and so is ``null`` for a field that
cannot be None (it would otherwise pass as "no setting" and fail far away).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import numbers
import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

T = TypeVar("T", bound="JsonConfig")


class ConfigError(ValueError):
    """A configuration file or dictionary is not valid."""


class FieldTypeError(ConfigError):
    """A value of the wrong JSON type for its field: ``what`` it must be, the ``value`` given."""

    def __init__(self, name: str, what: str, value: Any) -> None:
        self.name, self.what, self.value = name, what, value
        super().__init__(f"{name} must be {what}, got {show_value(value)}")


def show_value(value: Any) -> str:
    """``value`` as the user wrote it in JSON (``true``, ``"0.001"``), else its repr."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def is_whole_number(value: Any) -> bool:
    """Whether ``value`` is a Python ``int`` and not a bool (``True`` is an int to Python).

    The check of values already read: a float such as ``3.0`` or a numpy integer is not one
    (a :class:`JsonConfig` field of type ``int`` converts those when it is read).
    """
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(tp: Any) -> str:
    """What a value of type ``tp`` is, in words, for error messages."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        text = " or ".join(_describe(a) for a in non_none)
        return text + " or null" if len(non_none) < len(args) else text
    if tp is bool:
        return "true or false"
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin in (tuple, list):
        if origin is tuple and args and args[-1] is not Ellipsis:
            kinds = {_describe(a) for a in args}
            if len(kinds) == 1:
                return f"a list of {len(args)} {_plural(kinds.pop())}"
            return f"a list of {len(args)} values"
        return f"a list of {_plural(_describe(args[0]))}" if args and args[0] is not Any else "a list"
    if origin is dict or tp is dict or (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
        return "an object"
    return getattr(tp, "__name__", str(tp))


def _plural(what: str) -> str:
    return {"a number": "numbers", "a whole number": "whole numbers", "a string": "strings",
            "true or false": "true/false values", "an object": "objects"}.get(what, "values")  # fmt: skip


def _from_value(tp: Any, value: Any, where: str, name: str) -> Any:
    """``value`` converted to ``tp``; :class:`FieldTypeError` when JSON gave the wrong type.

    ``where`` is the file (or class) for the messages of nested configs, ``name``
    the field's dotted path.
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if value is None:
        # JSON null only where the field says it may be None: `"epochs": null` is a mistake
        if tp is type(None) or (origin in (typing.Union, types.UnionType) and type(None) in args):
            return None
        raise FieldTypeError(name, _describe(tp), value)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            try:
                return _from_value(non_none[0], value, where, name)
            except FieldTypeError as err:
                if err.name != name:  # an element or nested field is wrong: say which
                    raise
                raise FieldTypeError(name, _describe(tp), value) from None
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise FieldTypeError(name, "an object", value)
        return tp.from_dict(value, _where=where, _prefix=f"{name}.")
    if origin in (tuple, list):
        # A string is iterable, but never a list of settings.
        if not isinstance(value, list | tuple):
            raise FieldTypeError(name, _describe(tp), value)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise FieldTypeError(name, _describe(tp), value)
            return tuple(
                _from_value(a, v, where, f"{name}[{i}]") for i, (a, v) in enumerate(zip(args, value))
            )
        items = (
            [_from_value(args[0], v, where, f"{name}[{i}]") for i, v in enumerate(value)]
            if args
            else list(value)
        )
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise FieldTypeError(name, "an object", value)
        if len(args) == 2:
            return {k: _from_value(args[1], v, where, f"{name}.{k}") for k, v in value.items()}
        return value
    # JSON true/false are Python bools, and bool is an int: never let one pass as a number.
    if tp is bool:
        if getattr(getattr(value, "dtype", None), "kind", "") == "b":  # numpy.bool_ from code
            return bool(value)
        if not isinstance(value, bool):
            raise FieldTypeError(name, "true or false", value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise FieldTypeError(name, "a whole number", value)
        if not isinstance(value, numbers.Integral) and not float(value).is_integer():
            raise FieldTypeError(name, "a whole number", value)
        return int(value)  # 3.0 from JSON, or a numpy integer set from code, becomes a plain int
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise FieldTypeError(name, "a number", value)
        return float(value)
    if tp is str:
        # Paths given in code are fine; a number or list is not a name.
        if not isinstance(value, str | os.PathLike):
            raise FieldTypeError(name, "a string", value)
        return os.fspath(value)  # stored as the string it is written as
    return value


def _plain(value: Any) -> Any:
    """``value`` as a JSON type, for values set from code: a path, a numpy number or array."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    raise TypeError(f"a {type(value).__name__} cannot be written as JSON: {value!r}")


def check_value(tp: Any, value: Any, name: str) -> Any:
    """``value`` converted to the field type ``tp``; :class:`FieldTypeError` naming ``name`` if it is wrong."""
    return _from_value(tp, value, name, name)


def check_fields(config: Any) -> None:
    """Convert every field of the dataclass ``config`` as :meth:`JsonConfig.from_dict` would.

    For ``__post_init__``: a config built in code (``TrainConfig(epochs="2")``) is
    refused where it is built, not when its run starts. A nested config is already
    checked by its own class.

    Raises
    ------
    TypeError
        Naming the class, the field, what it takes and the value given.
    """
    kind = type(config)
    hints = _type_hints(kind)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            continue
        try:
            setattr(config, f.name, _from_value(hints[f.name], value, kind.__name__, f.name))
        except FieldTypeError as err:
            # in Python's words: a dict or list given in code has no "true" or "null"
            what = err.what.replace("true or false", "True or False").replace("null", "None")
            raise TypeError(f"{kind.__name__}: {err.name} must be {what}, got {err.value!r}") from None


@functools.cache
def _type_hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


@dataclasses.dataclass
class JsonConfig:
    """Base class: ``to_dict``/``from_dict``, ``to_json``/``from_json``, ``save``/``load``.

    A subclass with a ``format_version`` field sets ``FORMAT_VERSION``, the newest
    one it reads: a file of a later format is refused as such, before its new keys
    would be reported as unknown.
    """

    FORMAT_VERSION: ClassVar[int | None] = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON types (paths as strings, numpy numbers as Python ones)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=_plain))

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any], *, _where: str | None = None, _prefix: str = "") -> T:
        """Build from a dict (e.g. parsed JSON); :class:`ConfigError` names a wrong key or value type."""
        where = _where or cls.__name__
        if not isinstance(data, dict):
            what = f"{_prefix[:-1]} must be an object" if _prefix else "must be a JSON object"
            raise ConfigError(f"{where}: {what}, got {show_value(data)}")
        version = data.get("format_version")
        if cls.FORMAT_VERSION is not None and isinstance(version, int) and version > cls.FORMAT_VERSION:
            raise ConfigError(
                f"{where}: written by a newer napari-cellseg (format {version}; this one reads "
                f"{cls.FORMAT_VERSION}): update napari-cellseg"
            )
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names, key=str)
        if unknown:
            inside = f" in {_prefix[:-1]}" if _prefix else ""
            raise ConfigError(f"{where}: unknown key(s) {unknown}{inside}; valid keys are {sorted(names)}")
        try:
            kwargs = {k: _from_value(hints[k], v, where, f"{_prefix}{k}") for k, v in data.items()}
        except FieldTypeError as err:
            if _prefix:  # the outermost from_dict adds the file
                raise
            raise ConfigError(f"{where}: {err}") from None
        try:
            return cls(**kwargs)
        except TypeError as err:
            raise ConfigError(f"{where}: {err}") from None

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{cls.__name__}: not valid JSON ({err})") from None
        return cls.from_dict(data)

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
    # a shortened name: the file's own may be near the 255-byte limit
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=".tmp", dir=path.parent)
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


def _yaml_loader():
    """PyYAML's safe loader, reading ``1e-3`` as a number (YAML 1.2, JSON): 1.1 makes it a string."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
            |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
            re.X,
        ),
        list("-+0123456789."),
    )
    return Loader


def read_json_or_yaml(path: str | os.PathLike) -> Any:
    """The data of a ``.json`` (or ``.yaml``/``.yml``) file.

    Raises
    ------
    ConfigError
        Naming the file: missing, unreadable, or not valid JSON/YAML.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot be read ({err})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml  # comes with napari

        try:
            return yaml.load(text, Loader=_yaml_loader())
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
