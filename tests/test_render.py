"""``env.render()``'s table of a round record."""

from __future__ import annotations

from support_records import org_outcome, round_outcome

from fedenv.render import COLUMNS, round_table


def test_the_table_has_a_row_per_organization_with_its_action_money_and_score():
    outcome = round_outcome(
        {
            "northbank": org_outcome(
                level=2, contribution=0.0123, payout=1.5, cost=0.75, reward=0.75
            ),
            "citycare": org_outcome(
                accepted=False, contribution=-0.2, cost=1.0, reward=-1.0, domain="clinic"
            ),
            "skyway": org_outcome(participated=False, domain="airline"),
        },
        global_score=2.345,
        domain_scores={"bank": 3.0, "clinic": 1.25, "airline": 0.5},
        episode=4,
        round=0,
        max_rounds=3,
        public_height=12,
    )
    lines = round_table(outcome).splitlines()
    assert lines[0] == "episode 4 round 1/3  global score 2.345  public ledger height 12"
    assert lines[1].split() == list(COLUMNS)
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:]}
    assert rows == {
        "northbank": ["2", "+0.0123", "1.500", "0.750", "+0.750", "3.000"],
        "citycare": ["1", "rejected", "-0.2000", "0.000", "1.000", "-1.000", "1.250"],
        "skyway": ["0", "(out)", "+0.0000", "0.000", "0.000", "+0.000", "0.500"],
    }


def test_before_any_round_the_table_says_so():
    assert "no round played yet" in round_table(None)
