"""Load, validate and write configs: YAML presets plus dotted command-line overrides.

    cfg = load_config("configs/memory_match.yaml", ["agent.core.gate=ur", "learner.learning_rate=3e-4"])

Everything is checked here, before any work starts: an unknown key names the nearest
valid key, a wrong type or an out-of-range value names the key, the value and what
is allowed. Errors are ``ConfigError`` (a ``ValueError``) with a one-line message.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from configs.schema import Config


class ConfigError(ValueError):
    """A config that cannot be used; the message is one line naming key, value and the allowed choices."""


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (), schema: type = Config) -> Any:
    """Read a YAML preset (or start from defaults), apply ``key.path=value`` overrides, validate."""
    data = read_yaml(path) if path is not None else {}
    for override in overrides:
        key, value = parse_override(override)
        set_dotted(data, key, value)
    return from_dict(schema, data)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        presets = sorted(p.name for p in Path(__file__).parent.glob("*.yaml"))
        raise ConfigError(f"config file '{path}' not found; presets in configs/: {', '.join(presets)}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping at the top level, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=value"`` -> ``("a.b", value)`` with the value read as YAML (numbers, null, lists, booleans)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{text}' is not of the form key.path=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def from_dict(schema: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Build the frozen dataclass ``schema`` from plain data, validating every field."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"'{prefix.rstrip('.') or '<root>'}' must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in data:
        if key not in fields:
            raise ConfigError(unknown_key_message(schema, prefix, str(key)))
    hints = typing.get_type_hints(schema)
    values = {}
    for name, value in data.items():
        key = prefix + name
        values[name] = coerce(hints[name], value, key)
        check_constraints(fields[name].metadata, values[name], key)
    return schema(**values)


def unknown_key_message(schema: type, prefix: str, key: str) -> str:
    siblings = [f.name for f in dataclasses.fields(schema)]
    nearest = difflib.get_close_matches(key, siblings, n=1, cutoff=0.5)
    hint = f"did you mean '{prefix}{nearest[0]}'? " if nearest else ""
    return f"unknown config key '{prefix}{key}'; {hint}valid keys here: {', '.join(siblings)}"


def coerce(annotation: Any, value: Any, key: str) -> Any:
    """Convert YAML data to the annotated type, or raise naming the key and the expected type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return coerce(option, value, key)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, key + ".")
    if origin is tuple:
        return coerce_tuple(annotation, value, key)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise type_error(key, value, "a mapping")
        return dict(value)
    if annotation is Any:
        return value
    return coerce_scalar(annotation, value, key)


def coerce_tuple(annotation: Any, value: Any, key: str) -> tuple:
    if not isinstance(value, list | tuple):
        value = [value]
    args = typing.get_args(annotation)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(coerce(args[0], item, f"{key}[{i}]") for i, item in enumerate(value))
    if len(value) != len(args):
        raise type_error(key, value, f"a list of {len(args)} values")
    return tuple(coerce(arg, item, f"{key}[{i}]") for i, (arg, item) in enumerate(zip(args, value, strict=True)))


def coerce_scalar(annotation: type, value: Any, key: str) -> Any:
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise type_error(key, value, "true or false")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        number = _as_number(value)
        if number is not None and float(number).is_integer():
            return int(number)
        raise type_error(key, value, "an integer")
    if annotation is float:
        number = _as_number(value)
        if number is not None:
            return float(number)
        raise type_error(key, value, "a number")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise type_error(key, value, "a string")
    raise ConfigError(f"config key '{key}' has an unsupported type {annotation!r}")


def _as_number(value: Any) -> int | float | None:
    """A number from YAML data; YAML 1.1 reads ``3e-4`` and ``1e5`` as strings, so parse those too."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def type_error(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"config key '{key}' = {value!r} ({type(value).__name__}) must be {expected}")


def check_constraints(metadata: Mapping[str, Any], value: Any, key: str) -> None:
    if value is None:
        return
    choices = metadata.get("choices")
    if choices is not None and value not in choices:
        nearest = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f" (did you mean '{nearest[0]}'?)" if nearest else ""
        raise ConfigError(f"config key '{key}' = {value!r} is not one of: {', '.join(map(str, choices))}{hint}")
    low, high = metadata.get("low"), metadata.get("high")
    low_open = metadata.get("low_open", False)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        left = "(" if low_open else "["
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ConfigError(f"config key '{key}' = {value!r} is out of range; allowed: {interval}")


def to_dict(config: Any) -> dict[str, Any]:
    """Plain YAML-ready data (tuples become lists) that ``from_dict`` reads back equal."""
    return _plain(dataclasses.asdict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def write_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(to_yaml(config))
