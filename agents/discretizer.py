"""Map observations to integer states for tabular learners.

A ``Box`` observation is cut into ``bins[i]`` equal-width intervals per field between the space's
bounds (values outside are clipped into the first/last bin); a field with one bin is ignored, so
it may have infinite bounds. ``bins`` lists the fields in order and its last value repeats for
the remaining fields: ``3`` bins every field, ``(3, 3, 1)`` the first two and ignores the rest.
The state is the mixed-radix number of the per-field bin indices.
A ``Discrete`` observation is its own state.

:func:`state_bins` reads a learner's state design, ``("round_fraction=5", "1=3")``: the fields
it observes (by name, when the env names its observation fields, or by index) and their bins;
every other field is ignored, and an empty design is a single state (a bandit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from gymnasium import spaces


class BoxDiscretizer:
    """Equal-width bins per field of a ``Box`` space (flattened), using the space's bounds."""

    def __init__(self, space: spaces.Box, bins: int | Sequence[int]) -> None:
        if not isinstance(space, spaces.Box):
            raise TypeError(f"BoxDiscretizer needs a Box space, got {space!r}")
        n_fields = int(np.prod(space.shape))
        per_field = [bins] if isinstance(bins, (int, np.integer)) else list(bins)
        if not per_field or len(per_field) > n_fields:
            raise ValueError(f"bins: {len(per_field)} values given for {n_fields} observation "
                             f"fields; give 1 to {n_fields} values")
        per_field += per_field[-1:] * (n_fields - len(per_field))  # the last value repeats
        low = np.asarray(space.low, dtype=np.float64).reshape(-1)
        high = np.asarray(space.high, dtype=np.float64).reshape(-1)
        for i, b in enumerate(per_field):
            if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1:
                raise ValueError(f"bins[{i}]: must be an integer >= 1, got {b!r}")
            if b > 1 and not (np.isfinite(low[i]) and np.isfinite(high[i]) and high[i] > low[i]):
                raise ValueError(f"bins[{i}]: field {i} has bounds [{low[i]}, {high[i]}]; "
                                 f"binning it needs finite bounds with high > low (or use 1 bin)")
        self.space = space
        self.bins = np.asarray(per_field, dtype=np.int64)
        self._active = self.bins > 1
        self._low = np.where(self._active, low, 0.0)
        self._width = np.where(self._active, high - low, 1.0)
        self.n_states = math.prod(int(b) for b in per_field)
        if self.n_states >= 2**62:
            raise ValueError(f"bins: {self.n_states} states do not fit a 64-bit index; use fewer bins")
        # strides[i] = prod(bins[i+1:]): the last field varies fastest.
        strides = [1] * n_fields
        for i in range(n_fields - 2, -1, -1):
            strides[i] = strides[i + 1] * int(per_field[i + 1])
        self._strides = np.asarray(strides, dtype=np.int64)

    def bin_indices(self, obs: np.ndarray) -> np.ndarray:
        """Per-field bin index of ``obs`` (clipped into ``[0, bins-1]``)."""
        x = np.asarray(obs, dtype=np.float64).reshape(-1)
        if x.shape != self.bins.shape:
            raise ValueError(f"observation has {x.size} values, the space has {self.bins.size}")
        if np.isnan(x[self._active]).any():
            raise ValueError("observation contains NaN")
        scaled = np.floor((x - self._low) / self._width * self.bins)
        scaled = np.where(self._active, scaled, 0.0)
        return np.clip(scaled, 0, self.bins - 1).astype(np.int64)

    def __call__(self, obs: np.ndarray) -> int:
        return int(np.dot(self.bin_indices(obs), self._strides))


class DiscreteIdentity:
    """A ``Discrete`` observation is already a state."""

    def __init__(self, space: spaces.Discrete) -> None:
        self.space = space
        self.n_states = int(space.n)
        self._start = int(space.start)

    def __call__(self, obs: int | np.ndarray) -> int:
        state = int(np.asarray(obs).reshape(())) - self._start
        if not 0 <= state < self.n_states:
            raise ValueError(f"observation {obs!r} is outside {self.space!r}")
        return state


def state_bins(spec: Sequence[str], n_fields: int,
               field_names: Sequence[str] | None = None) -> list[int]:
    """Bins per observation field from ``FIELD=BINS`` entries (FIELD: a name in
    ``field_names`` or a 0-based index); fields not named get 1 bin (ignored).

    Raises ``ValueError`` naming the entry that does not fit."""
    bins = [1] * n_fields
    seen: set[int] = set()
    for entry in spec:
        field, sep, count = str(entry).partition("=")
        field = field.strip()
        if not sep or not field:
            raise ValueError(f"expected FIELD=BINS, got {entry!r}")
        try:
            n = int(count)
        except ValueError:
            raise ValueError(f"{entry!r}: BINS must be an integer >= 1") from None
        if n < 1:
            raise ValueError(f"{entry!r}: BINS must be an integer >= 1")
        if field.isdigit():
            index = int(field)
            if index >= n_fields:
                raise ValueError(f"{entry!r}: field index {index} is out of range "
                                 f"(the observation has {n_fields} fields)")
        elif field_names is not None and field in field_names:
            index = list(field_names).index(field)
        else:
            known = (f"the env's fields: {', '.join(field_names)}" if field_names is not None
                     else "the env names no observation fields; give 0-based indices")
            raise ValueError(f"{entry!r}: unknown observation field {field!r} ({known})")
        if index in seen:
            raise ValueError(f"{entry!r}: field {field!r} is named twice")
        seen.add(index)
        bins[index] = n
    return bins


def make_discretizer(space: spaces.Space, bins: int | Sequence[int]) -> BoxDiscretizer | DiscreteIdentity:
    """The discretizer for ``space`` (``bins`` applies to ``Box`` spaces)."""
    if isinstance(space, spaces.Discrete):
        return DiscreteIdentity(space)
    if isinstance(space, spaces.Box):
        return BoxDiscretizer(space, bins)
    raise TypeError(f"tabular agents need a Box or Discrete observation space, got {space!r}")
