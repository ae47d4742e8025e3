"""A command line generated from a (nested) config dataclass, CleanRL style.

Every field becomes an option whose help text is the field's ``metadata["help"]``:
``run_name`` -> ``--run-name``; a nested dataclass field ``q_learning`` contributes
``--q-learning.learning-rate`` etc. (one help section per nested config). Supported field types:
``int``, ``float``, ``str``, ``bool`` (``--x/--no-x``), ``tuple[int, ...]`` / ``tuple[str, ...]``
(one or more values). Validation errors raised by the dataclasses (:class:`ConfigError`) become
argparse errors naming the option: a message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

from agents.config import ConfigError

T = TypeVar("T")


def option_name(path: str) -> str:
    """``q_learning.learning_rate`` -> ``--q-learning.learning-rate``."""
    return "--" + path.replace("_", "-")


def _fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.init]


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _add_fields(parser: argparse.ArgumentParser, group: Any, cls: type, prefix: str) -> None:
    for f, hint in _fields(cls):
        path = prefix + f.name
        if dataclasses.is_dataclass(hint):
            section = parser.add_argument_group(path, (hint.__doc__ or "").strip().splitlines()[0])
            _add_fields(parser, section, hint, path + ".")
            continue
        default = _default(f)
        help_text = f.metadata.get("help", "")
        if default is not dataclasses.MISSING and "(default:" not in help_text:
            shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
            help_text += f" (default: {shown!s})" if shown != "" else " (default: none)"
        kwargs: dict[str, Any] = {"dest": path, "default": argparse.SUPPRESS, "help": help_text}
        origin = typing.get_origin(hint)
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is tuple:
            item_type = typing.get_args(hint)[0]
            kwargs.update(type=item_type, nargs="+", metavar=item_type.__name__.upper())
        elif hint in (int, float, str):
            kwargs.update(type=hint, metavar=hint.__name__.upper())
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: unsupported option type {hint!r}")
        group.add_argument(option_name(path), **kwargs)


def build_parser(cls: type, **parser_kwargs: Any) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with one option per (nested) field of dataclass ``cls``."""
    parser = argparse.ArgumentParser(**parser_kwargs)
    _add_fields(parser, parser, cls, "")
    return parser


def _build(cls: type[T], values: dict[str, Any], prefix: str) -> T:
    kwargs: dict[str, Any] = {}
    for f, hint in _fields(cls):
        path = prefix + f.name
        if dataclasses.is_dataclass(hint):
            kwargs[f.name] = _build(hint, values, path + ".")
        elif path in values:
            value = values[path]
            kwargs[f.name] = tuple(value) if typing.get_origin(hint) is tuple else value
    try:
        return cls(**kwargs)
    except ConfigError as error:
        field = error.field if error.field.startswith(prefix) else prefix + error.field
        raise ConfigError(field, error.problem) from None


def parse_config(cls: type[T], argv: Sequence[str] | None = None, **parser_kwargs: Any
                 ) -> tuple[T, set[str], argparse.ArgumentParser]:
    """Parse ``argv`` into ``cls``; also returns the dotted names of the options given.

    A :class:`ConfigError` from the dataclasses exits with status 2, naming the option.
    """
    parser = build_parser(cls, **parser_kwargs)
    values = vars(parser.parse_args(argv))
    try:
        config = _build(cls, values, "")
    except ConfigError as error:
        parser.error(f"argument {option_name(error.field)}: {error.problem}")
    return config, set(values), parser


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a (nested) config dataclass from ``dataclasses.asdict`` output (e.g. JSON)."""
    flat: dict[str, Any] = {}

    def flatten(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                flatten(value, f"{prefix}{key}.")
            else:
                flat[prefix + key] = value

    flatten(data, "")
    return _build(cls, flat, "")


def config_table(config: Any) -> str:
    """The resolved config as a markdown table (TensorBoard's ``hyperparameters`` text)."""
    rows: list[tuple[str, Any]] = []

    def walk(node: Any, prefix: str) -> None:
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                rows.append((prefix + f.name, value))

    walk(config, "")
    return "|param|value|\n|-|-|\n" + "\n".join(f"|{key}|{value}|" for key, value in rows)
