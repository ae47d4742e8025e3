"""The agents' configuration error, and the checks their typed configs share.

:class:`ConfigError` has the shape of fedenv's (``field``, ``problem``, ``source``; the message
reads ``source: field: problem``), so a command line treats both alike (:mod:`agents.cli`); the
agents never import fedenv, hence a class of their own.
"""

from __future__ import annotations

import math


class ConfigError(ValueError):
    """A configuration value is invalid; ``field`` names it (dotted for nested configs)."""

    def __init__(self, field: str, problem: str, source: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {problem}")

    def __reduce__(self):  # pickles across process pools (the default passes only the message)
        return type(self), (self.field, self.problem, self.source)


def check_range(
    field: str,
    value: float,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ConfigError unless ``value`` is a finite number inside the given bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(field, f"must be a finite number, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ConfigError(field, f"must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ConfigError(field, f"must be {'<' if high_open else '<='} {high}, got {value!r}")


def check_int(field: str, value: int, *, low: int | None = None) -> None:
    """Raise ConfigError unless ``value`` is an int (not a bool) and at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be an integer, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(field, f"must be >= {low}, got {value!r}")
