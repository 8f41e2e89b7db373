"""YAML configuration into typed dataclasses, validated on load.

``parse_dataclass(cls, values, where)`` builds ``cls`` from a mapping: an unknown key, a missing
required key or a value of the wrong type raises :class:`ConfigError` naming the full key path
(``optim.lr``) and what was expected, so a typo in a recipe is one clear line, not a traceback.
Supported field types: bool, int, float, str, Path, None-able (``X | None``), ``tuple[X, ...]``,
``list[X]``, ``dict[str, X]``, ``Any`` and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value that does not fit its schema; the message names the key."""


def parse_dataclass(cls: type[T], values: Mapping[str, Any] | None, where: str = "") -> T:
    """``cls(**values)`` with every field checked and converted (see the module docstring)."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where or 'configuration'}: expected a mapping of keys, "
                          f"got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}   # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        key = _join(where, unknown[0])
        raise ConfigError(f"unknown key '{key}'; valid keys{' of ' + where if where else ''}: "
                          f"{', '.join(sorted(fields))}")
    kwargs = {}
    for name, f in fields.items():
        key = _join(where, name)
        if name in values:
            kwargs[name] = convert(hints[name], values[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key '{key}'")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{where or 'configuration'}: {err}") from None


def convert(kind: Any, value: Any, key: str) -> Any:
    """``value`` checked against and converted to the type annotation ``kind``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return convert(option, value, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else
                          f"'{key}': {value!r} fits none of {_name(kind)}")
    if dataclasses.is_dataclass(kind):
        return parse_dataclass(kind, value, key)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{key}' must be a list, got {value!r}")
        inner = args[0] if args else Any
        if origin is tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
            if len(value) != len(args):
                raise ConfigError(f"'{key}' must have {len(args)} items, got {len(value)}")
            return tuple(convert(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        items = [convert(inner, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"'{key}' must be a mapping, got {value!r}")
        inner = args[1] if len(args) == 2 else Any
        return {str(k): convert(inner, v, f"{key}.{k}") for k, v in value.items()}
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{key}' must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{key}' must be an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{key}' must be a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"'{key}' must be a string, got {value!r}")
        return value
    if kind is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"'{key}' must be a path, got {value!r}")
        return Path(value)
    raise ConfigError(f"'{key}': unsupported schema type {_name(kind)}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind))


def plain_data(value: Any) -> Any:
    """A config value (e.g. ``dataclasses.asdict`` output) made JSON-ready: mapping keys as
    strings, tuples as lists, paths as strings; everything else as is."""
    if isinstance(value, Mapping):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
