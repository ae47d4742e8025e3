"""What the data-poisoning attacks of a scenario achieved, measured on the global model.

| measure                 | of                  | share of probes on which the global model prefers ... |
| ----------------------- | ------------------- | ----------------------------------------------------- |
| `backdoor_asr`          | `backdoor` attackers | the backdoor's target, with the trigger in the user turns (attack success rate) |
| `false_fact_acceptance` | `false_facts` attackers | the attacker's wrong value of a fact it falsified |

Both are computed on held-out dialogues of the attackers' domains
(:func:`fedenv.scoring.poisoned_data.measure_dialogues`) with the benchmark's own scoring of fact
probes, after every round, only in scenarios with such attackers.
"""

from __future__ import annotations

from collections.abc import Sequence

from fedenv.data.benchmark import Benchmark
from fedenv.engine.federation import FederatedEngine
from fedenv.scoring.poisoned_data import measure_dialogues

MEASURES = {"backdoor": "backdoor_asr", "false_facts": "false_fact_acceptance"}
PROBE_DIALOGUES = 16  # held-out dialogues per attacked domain (two probes each at most)


class AttackMeasures:
    """The measures of :data:`MEASURES` for ``attackers`` (``(behaviour, domain, strength)``)."""

    def __init__(
        self,
        engine: FederatedEngine,
        attackers: Sequence[tuple[str, str, float]],
        *,
        seed: int,
        max_len: int,
        batch_size: int,
    ) -> None:
        self.engine = engine
        self.benchmarks: dict[str, Benchmark] = {}
        for behaviour, name in MEASURES.items():
            domains = {d: s for b, d, s in attackers if b == behaviour}
            probes = {
                domain: measure_dialogues(
                    behaviour, domain, seed=seed, strength=strength, count=PROBE_DIALOGUES
                )
                for domain, strength in domains.items()
            }
            probes = {d: p for d, p in probes.items() if p}
            if probes:
                self.benchmarks[name] = Benchmark(
                    engine.tokenizer,
                    probes,
                    max_len=max_len,
                    batch_size=batch_size,
                    device=engine.device,
                )

    def measure(self) -> dict[str, float]:
        """Each measure on the engine's current global model."""
        measures = {}
        for name, benchmark in self.benchmarks.items():
            result = self.engine.evaluate_global_on(benchmark)
            probes = sum(r.num_probes for r in result.domains.values())
            preferred = sum(r.fact_accuracy * r.num_probes for r in result.domains.values())
            measures[name] = preferred / probes if probes else 0.0
        return measures
