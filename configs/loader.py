"""Load, validate and write configs: YAML presets plus dotted command-line overrides.

    cfg = load_config("configs/memory_match.yaml", ["agent.core.gate=ur", "learner.learning_rate=3e-4"])

Everything is checked here, before any work starts: an unknown key names the nearest
valid key, a wrong type or an out-of-range value names the key, the value and what
is allowed. Errors are ``ConfigError`` (a ``ValueError``) with a one-line message.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import shlex
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from configs.schema import Config

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A config that cannot be used; the message is one line naming key, value and the allowed choices."""


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (), schema: type = Config) -> Any:
    """Read a YAML preset (or start from defaults), apply ``key.path=value`` overrides, validate."""
    data = read_yaml(path) if path is not None else {}
    parsed = [parse_override(override) for override in overrides]
    drop_other_envs_kwargs(data, parsed)
    for key, value in parsed:
        set_dotted(data, key, value)
    resolve_memoryless(data, parsed, path, overrides)
    return from_dict(schema, data)


def drop_other_envs_kwargs(data: dict[str, Any], overrides: list[tuple[str, Any]]) -> None:
    """Environment arguments belong to their environment: when an override changes ``env.id``, the
    preset's ``env.kwargs`` (written for the preset's id) are dropped before the overrides apply, so
    only ``env.kwargs.*`` given with the new id reach it. A one-line notice names what was dropped."""
    new_ids = [value for key, value in overrides if key == "env.id"]
    env = data.get("env")
    if not new_ids or not isinstance(env, dict) or not env.get("kwargs") or new_ids[-1] == env.get("id"):
        return
    dropped = env.pop("kwargs")
    keep = " ".join(f"env.kwargs.{name}={value}" for name, value in dropped.items())
    log.warning(
        "env.id=%s: the preset's env.kwargs for %s are dropped (%s); to pass any of them, add e.g. %s",
        new_ids[-1], env.get("id"), dropped, keep,
    )  # fmt: skip


def resolve_memoryless(data: dict[str, Any], overrides: list[tuple[str, Any]], path: Any, raw: Sequence[str]) -> None:
    """``agent.core.cell=none`` alone reaches the memoryless control from any preset: the preset's
    gate (and its options) belong to the preset's cell, so they become ``standard`` (and none). A
    gate asked for explicitly next to ``cell=none`` is refused with the command that works."""
    given = dict(overrides)  # the last override of a key wins, as in set_dotted
    if given.get("agent.core.cell") != "none":
        return
    core = data["agent"]["core"]  # set_dotted created it
    gate = core.get("gate", "standard")
    if "agent.core.gate" in given:
        if gate != "standard":
            fixed = ["agent.core.gate=standard" if parse_override(o)[0] == "agent.core.gate" else o for o in raw]
            raise ConfigError(
                f"agent.core.cell=none (the memoryless control) takes only agent.core.gate=standard, got {gate!r};"
                f" run: {suggested_command(path, fixed)}"
            )
        return
    options = core.get("options") if not any(k.startswith("agent.core.options") for k in given) else None
    if gate != "standard" or options:
        log.warning("agent.core.cell=none: the preset's gate %r%s replaced by gate 'standard' (the memoryless control)",
                    gate, f" and options {options}" if options else "")  # fmt: skip
    core["gate"] = "standard"
    if options:
        core.pop("options")


def suggested_command(path: Any, overrides: Sequence[str]) -> str:
    """The ``run_impala.py`` command line for ``path`` (shown relative to the working folder) and ``overrides``."""
    words = ["python", "run_impala.py"]
    if path is not None:
        shown = Path(path).resolve()
        words += ["--config", str(shown.relative_to(Path.cwd())) if shown.is_relative_to(Path.cwd()) else str(shown)]
    return shlex.join(words + list(overrides))


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
        values[name] = coerce(hints[name], yaml_switch(fields[name].metadata, value), key)
        check_constraints(fields[name].metadata, values[name], key)
    return schema(**values)


def yaml_switch(metadata: Mapping[str, Any], value: Any) -> Any:
    """YAML 1.1 reads ``on`` and ``off`` (also ``yes``/``no``) as booleans; a choice field that offers the
    words ``on`` and ``off`` takes them back as those words, so ``agent.core.compile=on`` means what it says."""
    if isinstance(value, bool) and {"on", "off"} <= set(metadata.get("choices") or ()):
        return "on" if value else "off"
    return value


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
    if low is None and high is None:
        return
    if isinstance(value, tuple):
        for i, item in enumerate(value):
            check_constraints(metadata, item, f"{key}[{i}]")
        return
    low_open, high_open = metadata.get("low_open", False), metadata.get("high_open", False)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
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
