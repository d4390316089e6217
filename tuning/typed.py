"""Typed configuration sections: build dataclasses from plain dicts and refuse anything off.

Every section of the configuration is a dataclass whose fields are declared with `setting()`,
which records the allowed values. `from_dict` walks a nested dict (from YAML plus `--set`
overrides), checks each value and raises `ConfigError` naming the dotted key, the bad value and
what is allowed. Unknown keys are errors too, with the list of known ones.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value that is missing, unknown or outside what is allowed."""


def setting(
    default: Any,
    help: str = "",
    *,
    choices: tuple | None = None,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> Any:
    """Declare a dataclass field with its allowed values (checked by `from_dict` and `check`)."""
    meta = {"help": help, "choices": choices, "low": low, "high": high,
            "low_open": low_open, "high_open": high_open}
    if isinstance(default, (dict, list)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda d=default: copy.deepcopy(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _describe(meta: Mapping[str, Any], type_name: str) -> str:
    if meta.get("choices"):
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    low, high = meta.get("low"), meta.get("high")
    if low is None and high is None:
        return f"a value of type {type_name}"
    left = "(" if meta.get("low_open") else "["
    right = ")" if meta.get("high_open") else "]"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"{type_name} in {left}{lo}, {hi}{right}"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _float_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _coerce(key: str, value: Any, tp: Any, meta: Mapping[str, Any]) -> Any:
    """Return `value` as type `tp`, or raise ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(key, value, args[0], meta)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: got {value!r}; allowed: a mapping of {_type_name(tp)} fields")
        return from_dict(tp, value, prefix=key)
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: got {value!r}; allowed: a mapping")
        return dict(value)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: got {value!r}; allowed: a list")
        inner = typing.get_args(tp)
        items = [_coerce(f"{key}[{i}]", v, inner[0], {}) if inner else v
                 for i, v in enumerate(value)]
        return list(items) if (origin is list or tp is list) else tuple(items)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: got {value!r}; allowed: true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: got {value!r}; allowed: {_describe(meta, 'int')}")
        return value
    if tp is float:
        if isinstance(value, str):
            value = _float_text(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: got {value!r}; allowed: {_describe(meta, 'float')}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: got {value!r}; allowed: {_describe(meta, 'str')}")
        return value
    return value


def _check_bounds(key: str, value: Any, meta: Mapping[str, Any], type_name: str) -> None:
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{key}: got {value!r}; allowed: {_describe(meta, type_name)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = meta.get("low"), meta.get("high")
        too_low = low is not None and (value <= low if meta.get("low_open") else value < low)
        too_high = high is not None and (value >= high if meta.get("high_open") else value > high)
        if too_low or too_high:
            raise ConfigError(f"{key}: got {value!r}; allowed: {_describe(meta, type_name)}")


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build dataclass `cls` from `data`, checking every key, type and bound."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"{where}{unknown[0]}: unknown key; allowed keys{' in ' + prefix if prefix else ''}: "
            + ", ".join(sorted(fields))
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        meta = fields[name].metadata
        coerced = _coerce(key, value, hints[name], meta)
        _check_bounds(key, coerced, meta, _type_name(hints[name]))
        kwargs[name] = coerced
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (JSON- and YAML-safe)."""
    return dataclasses.asdict(obj)


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `extra` into a copy of `base` (extra wins)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict[str, Any]:
    """Turn `a.b=value` into {"a": {"b": value}}; the value is read as YAML (1e-3, true, [1,2])."""
    import yaml

    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. model.gamma=0.1")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {text!r}: the key before '=' is empty")
    value = yaml.safe_load(raw) if raw.strip() else ""
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out
