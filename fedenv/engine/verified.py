"""Client updates checked once: validated, re-hashed and copied to the engine's device one time each.

Scoring a round evaluates many coalitions of the same updates (leave-one-out: ``n + 1`` of them,
exact Shapley: ``2^n``), and committing uses them once more. :class:`VerifiedUpdates` checks each
update the first time it is seen under the current global state (known, distinct organization,
positive ``num_examples``, keys and shapes of the global adapter, finite values, ``digest`` equal
to the adapter's canonical digest, the aggregator's own rule) and keeps a private copy of its
tensors on the engine's device, which every later aggregation uses.

An update is checked again whenever anything that the check covered may have changed: its
``org``, ``digest`` or ``num_examples``, its adapter mapping, any tensor in it, or a tensor's
version counter (bumped by every in-place change). A changed global state (a commit, a reset, a
load) forgets every check, since the aggregator's rule depends on it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from fedenv.engine.aggregators import Aggregator
from fedenv.engine.lora import Adapter, adapter_digest, validate_adapter
from fedenv.engine.rounds import ClientUpdate, positive_int
from fedenv.errors import InvalidUpdateError, UnknownOrganizationError


@dataclass(frozen=True)
class _Check:
    """What a passed check covered, and the device copy it made."""

    update: weakref.ReferenceType
    fields: tuple
    adapter: Adapter  # on the engine's device and dtypes


def _fingerprint(update: ClientUpdate) -> tuple:
    adapter = update.adapter
    tensors = (
        tuple(
            (key, id(t), t._version if isinstance(t, torch.Tensor) else None)
            for key, t in adapter.items()
        )
        if isinstance(adapter, Mapping)
        else ()
    )
    return (update.org, update.digest, update.num_examples, id(adapter), tensors)


class VerifiedUpdates:
    """Checks updates against one global state; see the module docstring."""

    def __init__(
        self,
        template: Mapping[str, torch.Tensor],
        orgs: Sequence[str],
        aggregator: Aggregator,
        global_adapter: Callable[[], Mapping[str, torch.Tensor]],
    ) -> None:
        self._template = template
        self._orgs = tuple(orgs)
        self._aggregator = aggregator
        self._global_adapter = global_adapter
        self._checks: dict[int, _Check] = {}

    def forget(self) -> None:
        """Drop every check (the global state changed)."""
        self._checks.clear()

    def check(self, updates: Sequence[ClientUpdate]) -> list[tuple[ClientUpdate, Adapter]]:
        """Every update with its device copy, sorted by ``(digest, num_examples, org)`` so their
        order does not matter. Raises on the first bad update; nothing is kept from a failed call
        that was not checked on its own."""
        seen = set()
        checked = []
        for update in updates:
            if not isinstance(update, ClientUpdate):
                raise InvalidUpdateError(f"expected ClientUpdate, got {type(update).__name__}")
            if update.org in seen:
                raise InvalidUpdateError(
                    f"update from {update.org!r}: more than one update from this organization"
                )
            seen.add(update.org)
            checked.append((update, self._adapter(update)))
        return sorted(checked, key=lambda pair: (pair[0].digest, pair[0].num_examples, pair[0].org))

    def trust(self, update: ClientUpdate) -> None:
        """Check an update whose digest the engine has just computed itself from its adapter:
        everything but the re-hash."""
        self._adapter(update, hashed=True)

    def _adapter(self, update: ClientUpdate, *, hashed: bool = False) -> Adapter:
        fields = _fingerprint(update)
        known = self._checks.get(id(update))
        if known is not None and known.update() is update and known.fields == fields:
            return known.adapter
        source = f"update from {update.org!r}"
        if update.org not in self._orgs:
            raise UnknownOrganizationError(update.org, self._orgs)
        if not positive_int(update.num_examples):
            raise InvalidUpdateError(
                f"{source}: num_examples must be a positive integer, got {update.num_examples!r}"
            )
        validate_adapter(update.adapter, self._template, source=source)
        if not hashed and adapter_digest(update.adapter) != update.digest:
            raise InvalidUpdateError(
                f"{source}: digest does not match the adapter's canonical bytes"
            )
        adapter = {
            key: update.adapter[key].to(device=t.device, dtype=t.dtype, copy=True)
            for key, t in self._template.items()
        }
        self._aggregator.check_update(self._global_adapter(), adapter, source=source)
        self._checks[id(update)] = _Check(weakref.ref(update), fields, adapter)
        return adapter
