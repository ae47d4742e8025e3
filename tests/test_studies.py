"""The studies' commands on the tiny scenario: raw results, tables, figures, redraws."""

from __future__ import annotations

import json

import pytest

from studies import attacks, incentives, learning

PNG = b"\x89PNG\r\n\x1a\n"


def test_the_learning_study_writes_curves_a_paired_table_and_the_figure(tmp_path, capsys):
    out, figure = tmp_path / "learning", tmp_path / "convergence.png"
    argv = ["--scenario", "tiny", "--seeds", "0,1", "--episodes", "3", "--eval-episodes", "1",
            "--myopic-episodes", "1", "--baselines", "always_min,never", "--out", str(out),
            "--figure", str(figure)]
    assert learning.main(argv) == 0
    document = json.loads((out / "results.json").read_text())
    assert [s["seed"] for s in document["seeds"]] == [0, 1]
    seed = document["seeds"][0]
    assert set(seed["curves"]) == {"q_learning", "q_learning_stateless"}
    returns = seed["curves"]["q_learning"]["return"]
    assert set(returns) == {"northbank", "citycare", "skyway"}
    assert all(len(v) == 3 for v in returns.values())
    assert seed["greedy"]["never"] == {"northbank": 0.0, "citycare": 0.0, "skyway": 0.0}
    assert (out / "seed-1.json").is_file()
    table = (out / "greedy.md").read_text()
    assert "| **q_learning** |" in table and "| never |" in table
    assert "q_learning minus policy (95% CI)" in table
    assert figure.read_bytes()[:8] == PNG
    capsys.readouterr()
    figure.unlink()
    redraw = ["--from-results", str(out / "results.json"), "--out", str(out), "--figure",
              str(figure)]
    assert learning.main(redraw) == 0
    assert figure.read_bytes()[:8] == PNG and capsys.readouterr().out.startswith(table)


def test_the_learning_study_refuses_an_unknown_reference(capsys):
    with pytest.raises(SystemExit) as exit_:
        learning.main(["--reference", "oracle"])
    assert exit_.value.code == 2
    assert "argument --reference: 'oracle' is neither a learner nor a baseline" in (
        capsys.readouterr().err)


def test_the_incentive_study_writes_evaluates_files_and_a_forest_plot(tmp_path, capsys):
    out, figure = tmp_path / "incentives", tmp_path / "forest.png"
    argv = ["--scenario", "tiny", "--seeds", "0,1", "--policy", "always_min", "--override",
            "max_rounds=1", "--out", str(out), "--figure", str(figure)]
    assert incentives.main(argv) == 0
    stdout = capsys.readouterr().out
    assert "none - equal" in stdout and "paired differences to 'equal'" in stdout
    document = json.loads((out / "results.json").read_text())
    assert [r["mechanism"] for r in document["paired"]["tiny"]["model/final_score"]] == [
        "shapley", "loo", "data_size", "none"]
    assert (out / "paired.csv").is_file() and figure.read_bytes()[:8] == PNG


def test_reuse_merges_an_earlier_runs_policies_and_refuses_other_settings():
    def document(learners, baselines, greedy, **config):
        base = {"scenario": "default", "episodes": 55, "eval_episodes": 3,
                "myopic_episodes": 5, "override": [], "reuse": "earlier.json",
                "learners": learners, "baselines": baselines}
        return {"config": {**base, **config},
                "seeds": [{"seed": s, "curves": {p: {} for p in learners},
                           "greedy": {p: {"a": v} for p, v in greedy.items()}}
                          for s in (0, 1)]}

    earlier = document(["q_learning", "q_learning_stateless"], ["random"],
                       {"q_learning": 1.0, "q_learning_stateless": 2.0, "random": 3.0},
                       override=())
    now = document(["q_learning"], ["never"], {"q_learning": 4.0, "never": 0.0})
    merged = learning.merge_reused(now, earlier)
    assert merged["config"]["learners"] == ["q_learning", "q_learning_stateless"]
    assert merged["config"]["baselines"] == ["never", "random"]
    seed = merged["seeds"][0]
    assert seed["greedy"] == {"q_learning": {"a": 4.0}, "q_learning_stateless": {"a": 2.0},
                              "random": {"a": 3.0}, "never": {"a": 0.0}}  # this run's wins
    with pytest.raises(ValueError, match="reuse: episodes differs"):
        learning.merge_reused(document(["q_learning"], ["never"], {}, episodes=30), earlier)
    with pytest.raises(ValueError, match=r"lack seeds \[1\]"):
        learning.merge_reused(now, {**earlier, "seeds": earlier["seeds"][:1]})


def test_the_attack_study_tabulates_each_attack_defence_and_mechanism(tmp_path, capsys):
    out = tmp_path / "attacks"
    argv = ["--attacks", "free_rider", "--defences", "none,default", "--mechanisms", "loo",
            "--seeds", "0", "--override", "max_rounds=1", "model.preset=test",
            "--out", str(out)]
    assert attacks.main(argv) == 0
    printed = capsys.readouterr().out
    rows = {(r["defence"], r["mechanism"]): r["stats"]
            for r in json.loads((out / "attacks.json").read_text())["rows"]}
    assert set(rows) == {("none", "loo"), ("default", "loo")}
    assert rows[("default", "loo")]["attack/attacker_rejection"]["mean"] == 1.0  # screened out
    assert rows[("none", "loo")]["attack/attacker_rejection"]["mean"] == 0.0
    assert "| free_rider | default | loo |" in printed
    # the best defence among those (here only default: none is no defence) and the bars
    assert "| free_rider | loo | default | 0.000 | " in printed
    assert attacks.main(["--from-results", str(out / "attacks.json")]) == 0
    assert "| free_rider | none | loo |" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        attacks.main(["--defences", "moat"])
    assert exit_.value.code == 2 and "argument --defences: unknown ['moat']" in (
        capsys.readouterr().err)


def test_the_learning_table_says_when_no_seed_count_applies():
    """A policy that earns the reference's returns on every seed has no difference to detect:
    the table says so (it once printed '~None seeds'); a clear difference is a 'yes'."""
    def seed(s: int, offset: float) -> dict:
        return {"seed": s, "greedy": {"q_learning": {"a": 2.0 + s + offset, "b": 1.0},
                                      "twin": {"a": 2.0 + s + offset, "b": 1.0},
                                      "never": {"a": 0.0, "b": 0.0}}}
    document = {"config": {"reference": "q_learning", "learners": ["q_learning", "twin"],
                           "baselines": ["never"]},
                "seeds": [seed(s, 0.1 * s * s) for s in range(5)]}
    table = learning.greedy_table(document)
    twin = next(line for line in table.splitlines() if line.startswith("| twin |"))
    assert "not detected (no difference of any size to detect" in twin and "None" not in table
    assert next(line for line in table.splitlines() if line.startswith("| never |")).endswith(
        "| yes |")


def _profile_deviations():
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "profile_deviations.py"
    spec = importlib.util.spec_from_file_location("profile_deviations", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_profile_deviations_replay_the_studys_profile_and_hold_one_organization_at_each_level():
    """benchmarks/profile_deviations.py: its learnt profile is the study's (same training, same
    greedy episodes), and each row holds exactly one organization at one fixed level."""
    from agents.q_learning import QLearningConfig

    module = _profile_deviations()
    q = QLearningConfig(gamma=0.0, state=("round_fraction=3",))
    learnt, rows = module.deviations("tiny", 1, "q_learning", q, episodes=2, eval_episodes=2,
                                     orgs=["citycare"])
    config = learning.LearningStudyConfig(
        scenario="tiny", seeds=(1,), episodes=2, eval_episodes=2, learners=("q_learning",),
        baselines=(), q_learning=q)
    assert learnt == learning.run_seed(config, 1, threads=1)["greedy"]["q_learning"]
    assert [(org, level) for org, level, _ in rows] == [("citycare", k) for k in range(3)]
    assert rows[0][2]["citycare"] == 0.0  # sitting out earns nothing
    assert rows[1][2] != rows[2][2]  # the levels are played: different rounds, different money
    with pytest.raises(ValueError, match="unknown organization 'nobody'"):
        module.deviations("tiny", 1, "q_learning", q, episodes=0, eval_episodes=1,
                          orgs=["nobody"])


def test_profile_deviation_summaries_read_the_printouts_and_pair_two_learners(tmp_path):
    """--summarize: each organization's gap to its best fixed level (negative where the learnt
    policy beats every fixed level), and the paired difference of two learners' summed gaps."""
    module = _profile_deviations()

    def log(name, algo, state, seed, learnt, own):
        rows = [(org, level, {org: value}) for org, levels in own.items()
                for level, value in enumerate(levels)]
        path = tmp_path / name
        path.write_text(module.printout(
            f"default, seed {seed}, {algo} (gamma 0.0, state {state}), 55 training episodes, "
            "5 greedy episodes", learnt, rows) + "\n")
        return path

    paths = [
        log("a3", "q_learning_stateless", "()", 3, {"nb": 53.11, "cc": 0.0},
            {"cc": [0.0, 15.06, 15.44, 6.68]}),
        log("a4", "q_learning_stateless", "()", 4, {"nb": 35.72, "cc": 0.0},
            {"cc": [0.0, 2.73, 3.26, -2.80]}),
        log("b3", "q_learning", "round_fraction=3", 3, {"nb": 9.48, "cc": 11.68},
            {"cc": [0.0, 5.77, 10.47, -1.80]}),
        log("b4", "q_learning", "round_fraction=3", 4, {"nb": 17.82, "cc": 5.30},
            {"cc": [0.0, 7.93, 7.27, -7.60]}),
    ]
    summary = module.summarize(paths)
    assert "q_learning_stateless, seed 3: cc +15.44 (+15.44)" in summary
    assert "q_learning (round_fraction=3), seed 3: cc -1.21 (-1.21)" in summary
    # round minus bandit: (-1.21 - 15.44 + 2.63 - 3.26) / 2 = -8.64
    assert "q_learning (round_fraction=3) minus q_learning_stateless, summed gap, 2 seeds: -8.64" \
        in summary
    bad = tmp_path / "bad"
    bad.write_text("seed 3\n")
    with pytest.raises(ValueError, match="bad: not a profile_deviations printout"):
        module.summarize([bad])
