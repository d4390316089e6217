"""Property tests of the configuration and of launch.py's answers to bad input.

Any value of any type for any dotted key, through a dict, a `--set` override or a YAML file,
gives a valid Config or one ConfigError line naming the key (never another exception), and
launch.py answers exit 2 with one `error:` line. Examples are derandomized (the same ones on
every run) and have no deadline: nothing here depends on wall-clock time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import string
import typing

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import launch
from settings import ConfigError, nested
from tuning.config import Config, config_from_dict, load_config

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _dotted_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every section and field of the config as a dotted key (model, model.gamma, ...)."""
    keys = []
    for name, hint in typing.get_type_hints(cls).items():
        keys.append(f"{prefix}{name}")
        if dataclasses.is_dataclass(hint):
            keys += _dotted_keys(hint, f"{prefix}{name}.")
    return keys


def _floats(obj: object) -> list[float]:
    """Every float of a config's typed fields (the free-form tune.space is checked by
    tuning.space_checks.validate_space before Ray starts, not here)."""
    if dataclasses.is_dataclass(obj):
        return [x for f in dataclasses.fields(obj) for x in _floats(getattr(obj, f.name))]
    if isinstance(obj, (list, tuple)):
        return [x for v in obj for x in _floats(v)]
    return [obj] if isinstance(obj, float) else []


def _valid(config: object) -> bool:
    """A Config whose float settings are all finite (nan passes every bound check otherwise)."""
    return isinstance(config, Config) and all(math.isfinite(x) for x in _floats(config))


KNOWN_KEYS = _dotted_keys()
HOSTILE = ["\t", "[1,", "{a: 1, a: 2}", "!!python/object/apply:os.system ['true']", "*x", "&a [*a]",
           "%YAML 9", "---\n...", "\x00", "\ufeff", "'", '"', "? [1]\n: 2", "- -", ".nan", "-.inf", ".inf",
           "1e999", "0x1p3", "nan", "NaN", "~", "null", "yes", "On", "2001-12-14", "!!binary aGk=",
           "a: b: c", "|\n x", "[" * 200, "1_000", "0o17", "+.5", "- [a, {b: [c, {d: e}]}]"]

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**70, max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12) | st.sampled_from(HOSTILE))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6) | st.integers() | st.sampled_from(KNOWN_KEYS),
                                        inner, max_size=4), max_leaves=8)
segment = st.text(alphabet=string.ascii_letters + string.digits + "_-", max_size=6)
keys = st.sampled_from(KNOWN_KEYS) | st.lists(segment, min_size=1, max_size=3).map(".".join) \
    | st.sampled_from(KNOWN_KEYS).flatmap(lambda k: segment.map(lambda s: f"{k}.{s}"))


def _named_path(message: str) -> str:
    return message.split(": ", 1)[0]


def _names_the_key(message: str, key: str) -> bool:
    """The error's leading dotted path is the key, a section above it or a field below it."""
    path = _named_path(message)
    return path == key or key.startswith(path + ".") or path.startswith(key + ".") or \
        path.startswith(key + "[")


def _one_line(message: str) -> bool:
    return "\n" not in message and "Traceback" not in message


@SETTINGS
@given(key=keys, value=values)
def test_any_value_for_any_key_is_a_config_or_a_config_error_naming_the_key(key, value):
    try:
        config = config_from_dict(nested(key, value))
    except ConfigError as error:
        assert _one_line(str(error)) and _names_the_key(str(error), key), (key, value, str(error))
    else:
        assert _valid(config), config


def _yaml_text(value: object) -> st.SearchStrategy[str]:
    return st.just(yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n..."))


override_values = values.flatmap(_yaml_text) | st.sampled_from(HOSTILE) | st.text(max_size=20)


@SETTINGS
@given(key=keys, raw=override_values)
def test_any_override_is_a_config_or_a_config_error_naming_the_key_or_the_text(key, raw):
    text = f"{key}={raw}"
    try:
        config = load_config(None, [text])
    except ConfigError as error:
        message = str(error)
        assert _one_line(message), message
        assert message.startswith(f"--set {text!r}") or _names_the_key(message, key), (text, message)
    else:
        assert _valid(config), config


@SETTINGS
@given(text=st.text(max_size=60) | st.sampled_from(HOSTILE) | values.flatmap(
    lambda v: st.just(yaml.safe_dump(v, default_flow_style=False))))
def test_any_config_file_is_a_config_or_a_config_error_naming_the_file(tmp_path_factory, text):
    path = tmp_path_factory.getbasetemp() / "any.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        config = load_config(path)
    except ConfigError as error:
        message = str(error)
        assert _one_line(message), message
        if not message.startswith(f"config file {str(path)!r}"):        # then a key in the file
            top = yaml.safe_load(text)
            assert any(_names_the_key(message, str(key)) for key in top), (text, message)
    else:
        assert _valid(config), config


def run_launch(*argv: str) -> tuple[int, str, str]:
    """launch.main in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = launch.main(list(argv))
        except SystemExit as stop:         # argparse's own exits
            code = stop.code if isinstance(stop.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def one_error_line(code: int, stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, stderr)
    assert "Traceback" not in stderr
    return lines[0]


@settings(SETTINGS, max_examples=120)
@given(key=keys, raw=override_values)
def test_launch_answers_any_override_with_exit_2_and_one_line(tmp_path_factory, key, raw):
    """`tune --resume` of an experiment that does not exist: every override ends in one line
    (the key's error, or, for a valid config, that there is nothing to resume)."""
    storage = tmp_path_factory.getbasetemp() / "nothing-here"
    code, _, stderr = run_launch("tune", "--resume", "--name", "no-such-experiment",
                                 f"--set=tune.storage_path={storage}", f"--set={key}={raw}")
    line = one_error_line(code, stderr)
    message = line.removeprefix("error: ")
    assert (message.startswith("--resume: no experiment") or message.startswith("--set ")
            or _names_the_key(message, key.strip())), (key, raw, line)
