"""Ledger time: an integer count of seconds since the Unix epoch, from an injectable clock.

Nothing hashed reads the wall clock. A ledger asks its `Clock` (any callable returning an int)
for block times; the default `LogicalClock` counts 0, 1, 2, ... and fedenv passes its round
counter, so a run's ledgers are the same bytes for the same seed. Certificate validity is
compared with these same integers (`at_datetime` turns one into the UTC instant it names), which
is why the default certificates are valid from the epoch on: logical times are the first seconds
of 1970.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable

__all__ = ["EPOCH", "Clock", "LogicalClock", "at_datetime", "check_time", "from_datetime"]

Clock = Callable[[], int]
EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_MAX_TIME = 253402300799  # 9999-12-31T23:59:59Z, the last instant X.509 can name


class LogicalClock:
    """A deterministic clock: start, start + step, start + 2 * step, ... (never the wall clock)."""

    def __init__(self, start: int = 0, step: int = 1) -> None:
        check_time(start, "LogicalClock start")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an int >= 0, got {step!r}")
        self.now, self.step = start, step

    def __call__(self) -> int:
        now = self.now
        self.now += self.step
        return now


def check_time(value: object, what: str = "time") -> int:
    """`value` if it is a ledger time (an int in 0..9999-12-31T23:59:59Z), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_TIME:
        raise ValueError(f"{what} must be an int of seconds in 0..{_MAX_TIME}, got {value!r}")
    return value


def at_datetime(seconds: int) -> _dt.datetime:
    """The UTC instant of a ledger time."""
    return EPOCH + _dt.timedelta(seconds=check_time(seconds))


def from_datetime(instant: _dt.datetime) -> int:
    """The ledger time (whole seconds, rounded down) of a timezone-aware instant."""
    return int((instant - EPOCH).total_seconds() // 1)
