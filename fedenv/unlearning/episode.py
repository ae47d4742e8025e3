"""What an unlearning method works from: the episode's rounds so far and its stored files.

:class:`EpisodeRecord` holds, per round played, who took part at which level, whose update was
accepted and with which share of the round (from the env's
:class:`~fedenv.records.RoundOutcome`\\ s), and reads the run folder's adapter files
(:mod:`fedenv.run_folder`): the base state, the state each round started from (the previous
round's global state, or the state an unlearning at its start left), and the updates as sent.  The forgotten organization's files are erased before any method runs, so
no method can read them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from fedenv.engine.federation import Participant
from fedenv.engine.global_state import split_global_state
from fedenv.engine.lora import Adapter
from fedenv.records import RoundOutcome
from fedenv.round import RoundPlayer
from fedenv.run_folder import adapter_path
from fedenv.unlearning.replay import (
    CommitRule,
    ReplayRound,
    StoredUpdate,
    load_adapter,
    remaining_shares,
    stored_update,
)


@dataclass(frozen=True)
class RoundRecord:
    """One round played: each participant's level, and the accepted organizations."""

    index: int
    levels: Mapping[str, int]
    accepted: tuple[str, ...]
    shares: Mapping[str, float]  # the accepted organizations' shares of the round, as recorded


def round_records(outcomes: Sequence[RoundOutcome]) -> list[RoundRecord]:
    """The rounds of an episode's outcomes, in order."""
    return [
        RoundRecord(
            o.round,
            {org: row.level for org, row in o.orgs.items() if row.level},
            tuple(sorted(org for org, row in o.orgs.items() if row.accepted)),
            {org: row.weight for org, row in sorted(o.orgs.items()) if row.accepted},
        )
        for o in outcomes
    ]


class EpisodeRecord:
    """The current episode of ``player`` (its rounds so far) with ``org`` to be forgotten (None:
    nobody), the organizations ``forgotten`` before it in the episode (their updates stay out
    too), and ``starts``: the files of the states that rounds started from after an unlearning
    at their start (round index -> run-folder file)."""

    def __init__(
        self,
        player: RoundPlayer,
        rounds: Sequence[RoundRecord],
        org: str | None,
        forgotten: Sequence[str] = (),
        starts: Mapping[int, str] | None = None,
    ) -> None:
        self.player = player
        self.engine = player.engine
        self.scenario = player.scenario
        self.run = player.run
        self.episode = player.episode
        self.rounds = list(rounds)
        self.org = org
        self.excluded = frozenset(o for o in (org, *forgotten) if o is not None)
        self.starts = dict(starts or {})
        training, defence = self.scenario.training, self.scenario.defence
        self.commit_rule = CommitRule(
            aggregator=training.aggregator,
            lora_scale=self.scenario.lora.scale,
            seed=self.scenario.seed,
            learning_rate=training.learning_rate,
            norm=defence.norm,
            norm_bound=defence.norm_bound,
            statistic=defence.aggregation,
            trim=defence.trim,
        )
        accepted = [r.index for r in self.rounds if self.excluded & set(r.accepted)]
        self.first_accepted: int | None = accepted[0] if accepted else None

    # --- who took part ------------------------------------------------------------------------
    def took_part(self) -> list[int]:
        """The rounds in which ``org`` sent an update."""
        return [r.index for r in self.rounds if org_in(r, self.org)]

    def remaining(self, record: RoundRecord) -> dict[str, int]:
        """The accepted organizations of a round other than the excluded ones, with levels."""
        return {o: record.levels[o] for o in record.accepted if o not in self.excluded}

    def shares(self, record: RoundRecord) -> dict[str, float]:
        """The remaining organizations' shares of a round: renormalized over them when it had
        accepted an excluded one (:func:`~fedenv.unlearning.replay.remaining_shares`)."""
        return remaining_shares(record.shares, sorted(self.excluded))

    def participant(self, org: str, level: int, local_steps: int | None = None) -> Participant:
        spec = self.scenario.level(level)
        steps = spec.local_steps if local_steps is None else local_steps
        return Participant(org, steps, spec.data_share)

    def num_examples(self, org: str, level: int) -> int:
        return self.engine.num_examples(self.participant(org, level))

    # --- files --------------------------------------------------------------------------------
    def update_file(self, round_index: int, org: str) -> str:
        return adapter_path(self.episode, round_index, org)

    def global_file(self, round_index: int) -> str:
        """The global state after round ``round_index`` (-1: the episode's base)."""
        if round_index < 0:
            return adapter_path(None, None, "base")
        return adapter_path(self.episode, round_index, "global")

    def global_after(self, round_index: int) -> Adapter:
        return load_adapter(self.run.read(self.global_file(round_index)))

    def start_file(self, round_index: int) -> str:
        """The global state round ``round_index`` started from."""
        return self.starts.get(round_index, self.global_file(round_index - 1))

    def start_state(self, round_index: int) -> Adapter:
        return load_adapter(self.run.read(self.start_file(round_index)))

    def stored(self, record: RoundRecord) -> list[StoredUpdate]:
        """The round's accepted updates other than the excluded ones', read from their files,
        with their remaining shares."""
        shares = self.shares(record)
        return [
            stored_update(
                o,
                self.run.read(self.update_file(record.index, o)),
                self.num_examples(o, k),
                self.scenario.level(k).local_steps,
                shares[o],
            )
            for o, k in sorted(self.remaining(record).items())
        ]

    def replay_round(self, record: RoundRecord) -> ReplayRound:
        """What replaying round ``record`` needs: its recorded start and remaining updates."""
        return ReplayRound(
            split_global_state(self.start_state(record.index))[0], self.stored(record)
        )

    def replay_plan(self) -> list[dict]:
        """Per round, what ``exact_replay`` commits: ``{"round", "start", "updates": [{"org",
        "artifact", "num_examples", "local_steps", "share"}]}`` (the certificate's recipe;
        ``start``: the file of the state the round started from)."""
        plan = []
        for r in self.rounds:
            shares = self.shares(r)
            updates = [
                {
                    "org": o,
                    "artifact": self.update_file(r.index, o),
                    "num_examples": self.num_examples(o, k),
                    "local_steps": self.scenario.level(k).local_steps,
                    "share": shares[o],
                }
                for o, k in sorted(self.remaining(r).items())
            ]
            plan.append({"round": r.index, "start": self.start_file(r.index), "updates": updates})
        return plan


def org_in(record: RoundRecord, org: str) -> bool:
    return org in record.levels


def on_device(adapter: Adapter, like: Mapping[str, torch.Tensor]) -> Adapter:
    """``adapter`` on the device and in the dtype of ``like``'s tensors."""
    return {k: v.to(like[k].device, like[k].dtype) for k, v in adapter.items()}
