"""Typed settings: the pydantic base of every fedenv config section, and its errors.

Every config section (the scenario's ``[lora]``, ``[training]``, ... and the engine's own
:class:`~fedenv.engine.settings.EngineConfig`) is a :class:`Settings` model: frozen, unknown keys
refused (``extra="forbid"``), strict types (an integer field takes no ``2.5``, ``"2"`` or
``true``; a number field takes integers), finite floats only, and its bounds declared once in
``Field(...)`` next to the ``description`` that is the field's help text.

A bad value raises :class:`~fedenv.errors.ConfigError`, never pydantic's ``ValidationError``:
:func:`config_error` turns the first error into ``field: problem, got value`` with the field's
dotted path (``organizations[2].unit_cost: must be >= 0, got -1``), phrased from the field's own
bounds (``must be in (0, 1]``).  Validators raise ``ConfigError`` themselves (their problem is
used as is); a model-level check names a field below the model with :func:`field_problem`.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from fedenv.errors import ConfigError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Settings", "config_error", "field_problem", "one_of"]


class Settings(BaseModel):
    """A frozen, strictly typed config section; bad values raise :class:`ConfigError`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise config_error(error, type(self)) from None

    # Validation only, like BaseModel.__init__: pydantic then validates a nested section in
    # place (one ValidationError with the whole key path) instead of calling this __init__.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> Self:
        """Validate plain data (as parsed from TOML or JSON); errors name ``source``."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise config_error(error, cls, source) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (tuples as lists); ``cls.from_dict(x.to_dict()) == x``."""
        return self.model_dump(mode="json")


def one_of(choices: Iterable[str]):
    """A validator: the value must be one of ``choices`` (named in the error)."""
    names = tuple(choices)

    def check(value: str) -> str:
        if value not in names:
            raise ConfigError("", f"must be one of {', '.join(map(repr, names))}, got {value!r}")
        return value

    return check


def field_problem(field: str, problem: str) -> PydanticCustomError:
    """The error a model-level validator raises for ``field`` (a path below the model)."""
    return PydanticCustomError("fedenv_field", "{problem}", {"field": field, "problem": problem})


# --- pydantic's errors as ConfigError ----------------------------------------------------------

_TYPES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "tuple_type": "an array",
    "list_type": "an array",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "dict_type": "a table",
}


def config_error(
    error: ValidationError, model: type[BaseModel], source: str | None = None
) -> ConfigError:
    """The first of ``error``'s problems as a :class:`ConfigError` naming its dotted key."""
    detail = error.errors()[0]
    loc, kind, value = tuple(detail["loc"]), detail["type"], detail.get("input")
    ctx = detail.get("ctx") or {}
    field = _path(loc)
    if kind == "fedenv_field":
        return ConfigError(_join(field, ctx["field"]), ctx["problem"], source)
    if kind == "value_error" and isinstance(ctx.get("error"), ConfigError):
        return ConfigError(field or ctx["error"].field, ctx["error"].problem, source)
    owner, info = _field_info(model, loc)
    if kind == "missing":
        problem = "missing required key"
    elif kind == "extra_forbidden":
        known = ", ".join(owner.model_fields) if owner is not None else "none"
        problem = f"unknown key (known: {known})"
    elif kind in _TYPES:
        problem = f"must be {_TYPES[kind]}, got {_describe(value)}"
    elif kind == "finite_number":
        problem = f"must be a finite number, got {value}"
    elif kind == "too_short" and ctx.get("min_length") == 1:
        problem = "must not be empty"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        problem = f"{_bounds(info, ctx)}, got {_show(value)}"
    else:
        problem = f"{detail['msg'][:1].lower()}{detail['msg'][1:]}, got {_show(value)}"
    return ConfigError(field or "config", problem, source)


def _path(loc: Sequence[int | str]) -> str:
    """``("organizations", 2, "unit_cost")`` -> ``organizations[2].unit_cost``."""
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int) and parts:
            parts[-1] += f"[{part}]"
        else:
            parts.append(f"[{part}]" if isinstance(part, int) else str(part))
    return ".".join(parts)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where and key else where or key


def _field_info(
    model: type[BaseModel], loc: Sequence[int | str]
) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model that holds the last key of ``loc``, and that key's field (if it has one)."""
    kind: Any = model
    owner, info = None, None
    for part in loc:
        if isinstance(part, int):
            kind = _item_type(kind)
            continue
        owner = kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None
        info = owner.model_fields.get(part) if owner is not None else None
        if info is None:
            return owner, None
        kind = info.annotation
    return owner, info


def _item_type(kind: Any) -> Any:
    args = [a for a in typing.get_args(kind) if a is not Ellipsis]
    return args[0] if args else None


_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


def _bounds(info: FieldInfo | None, ctx: Mapping[str, Any]) -> str:
    """``must be in (0, 1]`` / ``must be >= 0``, from the field's declared bounds."""
    low = high = None
    for item in info.metadata if info is not None else ():
        for attr, symbol in _BOUNDS:
            if getattr(item, attr, None) is not None:
                if symbol.startswith(">"):
                    low = (symbol, getattr(item, attr))
                else:
                    high = (symbol, getattr(item, attr))
    if low is not None and high is not None:
        opening = "(" if low[0] == ">" else "["
        closing = ")" if high[0] == "<" else "]"
        return f"must be in {opening}{_show(low[1])}, {_show(high[1])}{closing}"
    if low is None and high is None:  # a bound the field does not declare itself: the error's
        attr, symbol = next(pair for pair in _BOUNDS if pair[0] in ctx)
        return f"must be {symbol} {_show(ctx[attr])}"
    symbol, bound = low if low is not None else high
    return f"must be {symbol} {_show(bound)}"


def _describe(value: Any) -> str:
    kind = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        tuple: "array",
        dict: "table",
    }.get(type(value), type(value).__name__)
    return kind if isinstance(value, (dict, list, tuple)) else f"{kind} {_show(value)}"


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    return repr(value)
