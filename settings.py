"""Typed configuration sections: build dataclasses from plain dicts and refuse anything off.

The ground floor of icc-tune: a top-level module that imports nothing of the project, so every
package (datasets/, cluster_prep/, model/, tuning/, results/) and launch.py may import it.

Every section of the configuration is a dataclass whose fields are declared with `setting()`,
which records the allowed values. `from_dict` walks a nested dict (from YAML plus `--set`
overrides), checks each value and raises `ConfigError` naming the dotted key, the bad value and
what is allowed. Unknown keys are errors too, with the list of known ones.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
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
    left = "(" if meta.get("low_open") or low is None else "["
    right = ")" if meta.get("high_open") or high is None else "]"
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
        return _coerce_float(key, value, meta)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: got {value!r}; allowed: {_describe(meta, 'str')}")
        return value
    return value


def _coerce_float(key: str, value: Any, meta: Mapping[str, Any]) -> float:
    """A finite float: nan would pass every bound check (all comparisons are false) and inf
    breaks training later, so both are refused here, where the key is still known."""
    if isinstance(value, str):
        value = _float_text(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}: got {value!r}; allowed: {_describe(meta, 'float')}")
    try:
        number = float(value)
    except OverflowError:                   # an int beyond float's range
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{key}: got {value!r}; allowed: {_describe(meta, 'float')} "
                          f"(finite; nan and inf are refused)")
    return number


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
    unknown = sorted(set(data) - set(fields), key=str)     # YAML keys can be ints, None, ...
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


def with_paths(data: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of nested dict `data` with each dotted path of `changes` ("model.gamma") set to
    its value. Every mapping on the way must exist; the last key is checked where the result is
    built (`from_dict` refuses an unknown one, naming it)."""
    out = copy.deepcopy(dict(data))
    for path, value in changes.items():
        parts = path.split(".") if isinstance(path, str) else []
        if len(parts) < 2 or not all(parts):
            raise ConfigError(f"{path!r}: expected a dotted path SECTION.KEY, e.g. model.gamma")
        node = out
        for depth, part in enumerate(parts[:-1]):
            where = ".".join(parts[:depth + 1])
            if part not in node:
                raise ConfigError(f"{where}: unknown key; allowed keys: " + ", ".join(sorted(node, key=str)))
            if not isinstance(node[part], dict):
                raise ConfigError(f"{path}: {where} is a value, not a section")
            node = node[part]
        node[parts[-1]] = value
    return out


def parse_override(text: str) -> dict[str, Any]:
    """Turn `a.b=value` into {"a": {"b": value}}; the value is read as YAML (1e-3, true, [1,2])."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. model.gamma=0.1")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {text!r}: the key before '=' is empty")
    value = read_yaml(raw, f"--set {text!r}, the value after '='") if raw.strip() else ""
    return nested(key, value)


def dotted_value(data: Mapping[str, Any], key: str) -> Any:
    """The value at `key` ("model.gamma", or a whole section "model") of a nested config dict as
    saved or read from a file; None where the section or the field is missing or the section is
    not a mapping (a hand-edited or foreign file)."""
    section, _, field = key.partition(".")
    value = data.get(section)
    if not field:
        return value
    return value.get(field) if isinstance(value, Mapping) else None


def dotted_keys(data: Mapping[str, Any]) -> list[str]:
    """Every "section.field" of a nested config dict (config_to_dict's shape): what "every
    setting" means where no list of given settings narrows it."""
    return [f"{section}.{field}" for section, fields in data.items() for field in fields]


def nested(key: str, value: Any) -> dict[str, Any]:
    """`a.b.c`, v -> {"a": {"b": {"c": v}}}: a dotted key as the nested dict a YAML file gives."""
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


# ---------------------------------------------------------------- YAML, names, differences

def _strict_loader() -> type:
    """A SafeLoader that refuses a key written twice in one mapping (PyYAML keeps the last one
    silently, so a second `gamma:` further down would quietly win)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        pass

    def mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:                     # unhashable: construct_mapping says so
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {first + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return loader.construct_mapping(node, deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return StrictLoader


def _yaml_problem(error: Any) -> str:
    """One line out of PyYAML's multi-line message: where and what."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return " ".join(f"{where}{problem}".split())


def read_yaml(text: str, where: str) -> Any:
    """Parse YAML text (safe types only, no duplicate keys); errors name `where` and the line."""
    import yaml

    try:
        return yaml.load(text, Loader=_strict_loader())   # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise ConfigError(f"{where}: not valid YAML: {_yaml_problem(error)}") from None
    except RecursionError:
        raise ConfigError(f"{where}: not valid YAML: nested too deeply") from None


NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit"


def check_folder_name(key: str, name: Any) -> str:
    """A name that becomes one folder inside a storage root and can never leave it ('..', '/',
    a leading dot, an empty name)."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ConfigError(f"{key}: got {name!r}; allowed: {NAME_RULE} (a folder name inside "
                          f"tune.storage_path)")
    return name


def first_difference(saved: Any, now: Any, where: str = "") -> str | None:
    """'key: saved X, now Y' for the first dotted key (in sorted order) whose values differ."""
    if isinstance(saved, Mapping) and isinstance(now, Mapping):
        for key in sorted(set(saved) | set(now), key=str):
            found = first_difference(saved.get(key), now.get(key), f"{where}.{key}" if where else str(key))
            if found:
                return found
        return None
    return None if saved == now else f"{where}: saved {saved!r}, now {now!r}"
