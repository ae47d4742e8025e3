"""The data-poisoning attacks do what they should on the real tiny env, the measures see it, and a
defence brings them back down: a backdoor raises its attack success rate, false facts raise
their acceptance and lower the attacked domain's fact accuracy, and the coordinate-wise median
undoes both.

skyway attacks with a long top level (40 local steps at learning rate 0.01, 48 dialogues, all of
them poisoned) while the others train one step, so that two rounds of the "test" model are
enough for the attack to show; no other defence is on (no norm rule, no rejection)."""

from __future__ import annotations

from functools import cache

import fedenv

ROUNDS = 2
UNDEFENDED = {"defence.norm": "none", "defence.near_global": 0.0, "scoring.reject_negative": False}


@cache
def measured(behaviour: str, aggregation: str = "mean") -> tuple[dict, list[dict], list[float]]:
    """The base measures, each round's measures, and skyway's domain's fact accuracy."""
    orgs = fedenv.load_scenario("tiny").to_dict()["organizations"]
    for org in orgs:
        org["budget"] = 1000.0
    if behaviour != "honest":
        orgs[2].update(behaviour=behaviour, strength=1.0)
    orgs[2]["data_size"] = 48
    env = fedenv.parallel_env(
        "tiny",
        organizations=orgs,
        max_rounds=ROUNDS,
        resource_levels=[{"local_steps": 1}, {"local_steps": 40, "compute": 2.0}],
        mechanism="none",
        **{"training.learning_rate": 0.01, "defence.aggregation": aggregation, **UNDEFENDED},
    )
    try:
        env.reset(seed=0)
        rounds, accuracy = [], []
        while env.agents:
            infos = env.step({"northbank": 1, "citycare": 1, "skyway": 2})[4]
            assert all(i["accepted"] for i in infos.values())
            rounds.append(infos["northbank"])
            accuracy.append(env._player.global_result.domains["airline"].fact_accuracy)
        return dict(env._player._base_measures), rounds, accuracy
    finally:
        env.close()


def test_a_backdoor_raises_its_success_rate_and_the_median_brings_it_down():
    base, rounds, _ = measured("backdoor")
    assert rounds[0]["false_fact_acceptance"] is None  # only the attacks present are measured
    attacked = rounds[-1]["backdoor_asr"]
    assert attacked > base["backdoor_asr"]
    _, defended, _ = measured("backdoor", "median")
    assert defended[-1]["backdoor_asr"] < attacked


def test_false_facts_are_accepted_lower_fact_accuracy_and_the_median_brings_them_down():
    base, rounds, accuracy = measured("false_facts")
    accepted = rounds[-1]["false_fact_acceptance"]
    assert accepted > base["false_fact_acceptance"] + 0.2
    _, _, honest_accuracy = measured("honest")
    assert accuracy[-1] < honest_accuracy[-1]
    _, defended, _ = measured("false_facts", "median")
    assert defended[-1]["false_fact_acceptance"] < accepted - 0.2
