"""The typed round records: what ``info()`` makes of them at the env's edge."""

from __future__ import annotations

import pickle

import pytest
from support_records import org_outcome, round_outcome

from fedenv.records import INFO_KEYS, OrgOutcome, RoundOutcome
from fedenv.scoring.costs import RoundCosts


def test_info_flattens_the_org_and_round_into_the_documented_keys():
    costs = RoundCosts(compute=1.5, communication=0.25, ledger=0.125)
    outcome = round_outcome(
        {
            "northbank": org_outcome(
                domain="bank",
                level=2,
                local_steps=4,
                contribution=0.3,
                payout=2.0,
                costs=costs,
                model_value=0.5,
                reward=0.625,
                accepted=True,
                tx_ids=("tx-public", "tx-private"),
                weight=0.75,
                reasons=("norm: change x0.9",),
                reputation=0.9,
            ),
            "skyway": org_outcome(participated=False, domain="airline"),
        },
        global_score=3.0,
        domain_scores={"bank": 4.0, "airline": 2.0},
        round=1,
        public_height=7,
        attack_measures={"backdoor_asr": 0.25},
    )
    info = outcome.info("northbank")
    assert tuple(info) == INFO_KEYS
    assert info == {
        "participated": True,
        "resource": 2,
        "local_steps": 4,
        "contribution": 0.3,
        "payout": 2.0,
        "cost_compute": 1.5,
        "cost_communication": 0.25,
        "cost_ledger": 0.125,
        "cost_total": 1.875,
        "model_value": 0.5,
        "reward": 0.625,
        "accepted": True,
        "tx_ids": ["tx-public", "tx-private"],
        "public_height": 7,
        "global_score": 3.0,
        "domain_scores": {"bank": 4.0, "airline": 2.0},
        "round": 1,
        "weight": 0.75,
        "reasons": ["norm: change x0.9"],
        "reputation": 0.9,
        "backdoor_asr": 0.25,
        "false_fact_acceptance": None,
    }
    out = outcome.info("skyway")
    assert (out["participated"], out["resource"], out["cost_total"]) == (False, 0, 0.0)
    assert outcome.domain_score("skyway") == 2.0 and outcome.domain_score("northbank") == 4.0


def test_infos_are_fresh_plain_values_that_cannot_change_the_record():
    outcome = round_outcome({"a": org_outcome(tx_ids=("t1",))}, domain_scores={"bank": 1.0})
    info = outcome.info("a")
    info["tx_ids"].append("forged")
    info["domain_scores"]["bank"] = 9.0
    assert outcome.info("a")["tx_ids"] == ["t1"] and outcome.domain_scores["bank"] == 1.0


def test_records_are_frozen_and_pickle():
    outcome = round_outcome({"a": org_outcome()})
    with pytest.raises(AttributeError):
        outcome.global_score = 5.0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        outcome.orgs["a"].payout = 5.0  # type: ignore[misc]
    copy = pickle.loads(pickle.dumps(outcome))  # records travel back from evaluate.py's workers
    assert copy == outcome and isinstance(copy, RoundOutcome)
    assert isinstance(copy.orgs["a"], OrgOutcome)
