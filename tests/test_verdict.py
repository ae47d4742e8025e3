"""The verdict: a winner only for a detected paired difference; attackers' shares among payers."""

from __future__ import annotations

from support_results import scores, synthetic

from fedenv.evaluation.report import paired_comparisons, paired_table, summarize_comparison
from fedenv.evaluation.verdict import verdict


def test_a_difference_smaller_than_its_ci_names_no_winner_and_says_how_many_seeds():
    comparison = synthetic({
        "equal": scores(0.0),
        "shapley": scores(0.05, (0.3, -0.4, 0.2, -0.1, 0.25)),  # mean +0.1, sd ~0.29
    })
    rows = summarize_comparison(comparison)
    comparisons = paired_comparisons(rows, "equal")
    c = comparisons["tiny"]["model/final_score"][0]
    assert c.mechanism == "shapley" and c.n == 5
    assert c.difference.low < 0 < c.difference.high and not c.detected
    assert c.test == "t" and c.p_holm > 0.05
    assert 10 < c.seeds_needed < 200
    text = verdict(rows, comparisons, has_attackers={"tiny": False}, reference="equal")
    line = next(x for x in text.splitlines() if "best model" in x)
    assert "no detectable difference at 5 seeds" in line
    assert f"about {c.seeds_needed:,} seeds" in line
    assert "best model: shapley" not in line


def test_a_clear_paired_difference_names_the_winner_even_when_seed_effects_are_large():
    comparison = synthetic({
        "equal": scores(0.0),
        "shapley": scores(0.5, (0.02, -0.01, 0.03, -0.02, 0.0)),
        "none": scores(-1.0, (0.05, -0.05, 0.0, 0.02, -0.02)),
    })
    rows = summarize_comparison(comparison)
    # unpaired, the intervals of the means overlap: the seeds' spread dominates
    equal, shapley = (r.stats["model/final_score"] for r in rows[:2])
    assert shapley.low < equal.high
    comparisons = paired_comparisons(rows, "equal")
    better, worse = comparisons["tiny"]["model/final_score"]
    assert better.detected and better.difference.low > 0
    assert worse.detected and worse.difference.high < 0
    text = verdict(rows, comparisons, has_attackers={"tiny": False}, reference="equal")
    assert "best model: shapley (shapley +0.504 [" in text
    table = paired_table(comparisons)
    assert "shapley - equal" in table and " *" in table


def test_the_reference_wins_when_it_beats_the_others():
    comparison = synthetic({"equal": scores(0.0),
                              "none": scores(-1.0, (0.05, -0.05, 0.0, 0.02, -0.02))})
    rows = summarize_comparison(comparison)
    text = verdict(rows, paired_comparisons(rows, "equal"), has_attackers={"tiny": False})
    assert "best model: equal (the reference): no mechanism beats it, and it beats none" in text


def test_the_attacker_verdict_compares_shares_only_among_mechanisms_that_pay():
    share = "attack/payout_share_malicious"
    comparison = synthetic({
        "equal": [{share: 0.25 + e} for e in (0.01, -0.01, 0.0, 0.02, -0.02)],
        "loo": [{share: 0.02 + e} for e in (0.0, 0.01, -0.01, 0.0, 0.0)],
        "none": [{share: None}] * 5,  # pays nobody
    })
    rows = summarize_comparison(comparison)
    comparisons = paired_comparisons(rows, "equal")
    text = verdict(rows, comparisons, has_attackers={"tiny": True}, reference="equal")
    line = next(x for x in text.splitlines() if "attackers" in x)
    assert line.startswith("  smallest share paid to attackers: loo (loo -0.23")
    assert line.endswith("pays nothing: none")
    none = next(c for c in comparisons["tiny"][share] if c.mechanism == "none")
    assert none.difference is None and not none.detected
    # a reference that pays nothing cannot be compared on shares
    text = verdict(rows, paired_comparisons(rows, "none"), has_attackers={"tiny": True},
                   reference="none")
    assert "n/a (the reference 'none' pays nothing" in text
