"""The command lines of ``train_agents.py`` and ``evaluate.py``: tyro, from the config dataclasses.

As in CleanRL, a script's options are a dataclass whose fields carry their help text as field
docstrings; :func:`parse` hands it to ``tyro.cli``, so ``--help`` is generated from the same
class the code uses.  A nested dataclass field is a section (``--q-learning.learning-rate``),
a ``bool`` is ``--x/--no-x``, a ``tuple`` takes several values (``--override a=1 b=2``), and
:func:`comma_list` also splits them at commas (``--seeds 0,1``).  An option given twice adds up
for tuples (``--mechanisms equal --mechanisms none``); other options keep the last value.

Errors exit with status 2.  tyro reports what it cannot parse (an unknown option, ``--episodes
many``); a ``ConfigError`` raised while building the config, or later by the script
(:func:`fail`), is printed argparse-style, naming the option:
``train_agents.py: error: argument --q-learning.gamma: must be <= 1.0, got 1.5``.  Any
exception with string ``field`` and ``problem`` attributes counts as a ``ConfigError`` (the
shape fedenv's and agents' share), so a script's config may raise either.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import typing
from collections import Counter
from collections.abc import Sequence
from typing import Any, NoReturn, TypeVar

import tyro
from tyro.constructors import ConstructorRegistry, PrimitiveConstructorSpec, StructConstructorSpec

from agents.config import ConfigError

T = TypeVar("T")


def option_name(path: str) -> str:
    """``q_learning.learning_rate`` -> ``--q-learning.learning-rate``."""
    return "--" + path.replace("_", "-")


def fail(prog: str, field: str, problem: str) -> NoReturn:
    """Print ``prog: error: argument --field: problem`` (with the usage line) and exit 2."""
    print(f"usage: {prog} [-h] [OPTIONS]\n{prog}: error: argument {option_name(field)}: "
          f"{problem}", file=sys.stderr)
    raise SystemExit(2)


def comma_list(item: type) -> PrimitiveConstructorSpec:
    """A ``tuple[item, ...]`` option whose values may also be comma-separated: annotate the
    field ``Annotated[tuple[int, ...], comma_list(int)]`` to accept ``--seeds 0,1 2``."""

    def from_strings(args: list[str]) -> tuple:
        items = [part.strip() for arg in args for part in arg.split(",")]
        if any(not part for part in items):
            raise ValueError(f"empty entry in {' '.join(args)!r}")
        try:
            return tuple(item(part) for part in items)
        except ValueError:
            raise ValueError(f"expected {item.__name__} values, got {', '.join(items)}") from None

    return PrimitiveConstructorSpec(
        nargs="*",
        metavar=f"{item.__name__.upper()}[,...]",
        instance_from_str=from_strings,
        is_instance=lambda value: isinstance(value, tuple),
        str_from_instance=lambda value: [",".join(map(str, value))] if value else [],
    )


def parse_overrides(items: Sequence[str], field: str = "override") -> dict[str, Any]:
    """``KEY=VALUE`` items -> ``{key: value}``; a value is parsed as JSON, else kept a string
    (``max_rounds=4`` -> 4, ``scoring.reject_negative=false`` -> False, ``aggregator=ffa``).
    A key given twice is an error (not last-wins)."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(field, f"expected KEY=VALUE, got {item!r}")
        if key.strip() in overrides:
            raise ConfigError(field, f"{key.strip()!r} is given twice; give each key once")
        try:
            overrides[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key.strip()] = raw
    return overrides


def parse(cls: type[T], argv: Sequence[str] | None = None, *, prog: str,
          description: str | None = None) -> tuple[T, set[str]]:
    """``argv`` (default: ``sys.argv[1:]``) parsed into ``cls``; also returns the dotted names
    of the options given (``{"episodes", "q_learning.bins"}``).  Exits 2 on a bad option.
    ``description`` (``--help``'s header) defaults to ``cls``'s docstring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    options = _options(cls)
    argv = _merge_repeated(argv, {key for key, (_, many) in options.items() if many})
    if description is None:
        description = inspect.getdoc(cls) or ""
    try:
        config = tyro.cli(cls, args=argv, prog=prog, description=description,
                          registry=_naming_errors(cls))
    except _Rejected as error:
        fail(prog, error.field, error.problem)
    keys = (_option_key(token) for token in argv)
    return config, {options[key][0] for key in keys if key in options}


# --- which option is which field -------------------------------------------------------------


def _fields(cls: type, prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted path, type)`` of every option of ``cls``, sections' fields included."""
    found = []
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            found += _fields(hint, f"{prefix}{f.name}.")
        else:
            found.append((prefix + f.name, hint))
    return found


def _options(cls: type) -> dict[str, tuple[str, bool]]:
    """Option key (``q-learning.bins``; ``no-progress`` for booleans) -> (path, takes several)."""
    options = {}
    for path, hint in _fields(cls):
        if typing.get_origin(hint) is typing.Annotated:
            hint = typing.get_args(hint)[0]
        key = option_name(path)[2:]
        options[key] = (path, typing.get_origin(hint) is tuple)
        if hint is bool:
            options[_negated(key)] = (path, False)
    return options


def _negated(key: str) -> str:
    """``q-learning.flag`` <-> ``q-learning.no-flag``."""
    section, dot, name = key.rpartition(".")
    name = name[3:] if name.startswith("no-") else f"no-{name}"
    return f"{section}{dot}{name}"


def _is_flag(token: str) -> bool:
    """What tyro reads as an option rather than a value (``-5`` is a value)."""
    return token == "--" or (token.startswith("-") and token.lstrip("-")[:1].isalpha())


def _option_key(token: str) -> str | None:
    """``--Q_learning.bins=3`` -> ``q-learning.bins``; ``None`` for values and ``-h``."""
    if not token.startswith("--") or not _is_flag(token):
        return None
    return token[2:].partition("=")[0].replace("_", "-")


def _merge_repeated(argv: list[str], several: set[str]) -> list[str]:
    """``--m a --m b,c`` -> ``--m a b,c`` for the options that take several values."""
    groups: list[tuple[str | None, list[str]]] = []  # (option that takes several, its tokens)
    i = 0
    while i < len(argv):
        key, j = _option_key(argv[i]), i + 1
        if key in several and "=" not in argv[i]:
            while j < len(argv) and not _is_flag(argv[j]):
                j += 1
        groups.append((key if key in several else None, argv[i:j]))
        i = j
    counts = Counter(key for key, _ in groups if key is not None)
    merged: dict[str, list[str]] = {}
    out: list[list[str]] = []
    for key, tokens in groups:
        if key is None or counts[key] == 1:
            out.append(tokens)
            continue
        flag, equals, inline = tokens[0].partition("=")
        values = [inline] if equals else tokens[1:]
        if key in merged:
            merged[key].extend(values)
        else:
            merged[key] = [flag, *values]
            out.append(merged[key])
    return [token for tokens in out for token in tokens]


# --- ConfigErrors raised while tyro builds the config ------------------------------------------


class _Rejected(Exception):
    """A config error met while tyro builds a section; not a ValueError, so tyro lets it pass."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


def _naming_errors(cls: type) -> ConstructorRegistry:
    """A registry under which building ``cls`` or one of its sections turns a ConfigError into
    :class:`_Rejected` with the field's full path (``q_learning.gamma``)."""
    sections = {cls: ""}

    def collect(node: type, prefix: str) -> None:
        hints = typing.get_type_hints(node)
        for f in dataclasses.fields(node):
            if dataclasses.is_dataclass(hints[f.name]):
                if hints[f.name] in sections:
                    raise TypeError(f"{hints[f.name].__name__} is two sections of {cls.__name__}")
                sections[hints[f.name]] = f"{prefix}{f.name}."
                collect(hints[f.name], f"{prefix}{f.name}.")

    collect(cls, "")
    registry = ConstructorRegistry()
    building: set[type] = set()

    @registry.struct_rule
    def rule(info: Any) -> StructConstructorSpec | None:
        kind = info.type
        if kind not in sections or kind in building:
            return None
        building.add(kind)
        try:
            spec = ConstructorRegistry.get_struct_spec(info)  # tyro's own rule for dataclasses
        finally:
            building.discard(kind)
        if not isinstance(spec, StructConstructorSpec):
            return None

        def instantiate(*args: Any, **kwargs: Any) -> Any:
            try:
                return spec.instantiate(*args, **kwargs)
            except ValueError as error:
                field, problem = getattr(error, "field", None), getattr(error, "problem", None)
                if not (isinstance(field, str) and isinstance(problem, str)):
                    raise
                raise _Rejected(sections[kind] + field, problem) from None

        return StructConstructorSpec(instantiate=instantiate, fields=spec.fields)

    return registry
