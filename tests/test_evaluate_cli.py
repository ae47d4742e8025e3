"""evaluate.py as an analyst runs it: options, refusals, and a tiny end-to-end comparison."""

from __future__ import annotations

import csv
import json
import sys

import pytest

import evaluate
import fedenv
import fedenv.evaluation
from fedenv.evaluation.play import METRICS

TINY = ["--scenario", "tiny", "--no-progress"]


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = evaluate.main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_every_option_with_its_help(capsys):
    code, out, _ = _main(capsys, "--help")
    assert code == 0
    for option in (
        "--scenario",
        "--mechanisms",
        "--seeds",
        "--episodes",
        "--policy",
        "--train-episodes",
        "--contribution",
        "--device",
        "--override",
        "--workers",
        "--out",
        "--plot",
        "--progress",
        "--sweep",
        "--reference",
    ):
        assert option in out
    assert "evaluation episodes per (scenario, mechanism, seed)" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--mechanisms", "shapley,bribes"], "argument --mechanisms: unknown mechanism 'bribes'"),
        (["--policy", "sarsa"], "argument --policy: unknown algorithm 'sarsa'"),
        (
            ["--policy", "random,mallory=never"],
            "argument --policy: unknown organization(s) 'mallory'",
        ),
        (["--policy", "q_learning"], "argument --train-episodes: q_learning learn(s)"),
        (["--scenario", "atlantis"], "argument --scenario: "),
        (["--episodes", "0"], "argument --episodes: must be >= 1"),
        (["--episodes", "-2"], "argument --episodes: must be >= 1"),
        (["--seeds", "0,x"], "--seeds: expected int values, got 0, x"),  # tyro's own message
        (["--seeds", "0,0"], "argument --seeds: repeated seed"),
        (["--workers", "0"], "argument --workers: must be >= 1"),
        (["--contribution", "banzhaf"], "argument --contribution: unknown method 'banzhaf'"),
        (["--device", "gpu"], "argument --device: must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        (["--device", "mps"], "argument --device: 'mps' is not supported"),
        (["--override", "max_rounds=0"], "argument --override: max_rounds: must be >= 1"),
        (["--override", "max_rounds"], "argument --override: expected KEY=VALUE"),
        (["--override", "max_rounds=2", "max_rounds=3"], ("argument --override: 'max_rounds' is "
                                                         "given twice")),
        (["--override", "reward_pool=2", "incentives.reward_pool=3"],
         "argument --override: incentives.reward_pool: sets 'incentives.reward_pool'"),
        (["--sweep", "lora.r"], "argument --sweep: expected KEY=V1,V2"),
        (["--sweep", "lora.r=4,,8"], "argument --sweep: 'lora.r=4,,8': empty value"),
        (["--sweep", "lora.r=2,-4"], "argument --sweep: tiny: lora.r"),
        (["--sweep", "reward_pool=5,10", "--override", "incentives.reward_pool=3"],
         "argument --sweep: 'incentives.reward_pool' is both swept and set by --override"),
        (["--reference", "bribes"], "argument --reference: 'bribes' is not among"),
        (["--mechanisms", "loo,none", "--reference", "equal"],
         "argument --reference: 'equal' is not among"),
    ],
)
def test_bad_options_exit_2_naming_the_option(tmp_path, capsys, argv, message):
    out = tmp_path / "eval"
    code, _, err = _main(capsys, *TINY, "--out", str(out), *argv)
    assert code == 2
    assert message in err
    assert not out.exists()  # a refused comparison leaves nothing behind


def test_plot_without_matplotlib_is_refused_before_any_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    code, _, err = _main(capsys, *TINY, "--out", str(tmp_path / "eval"), "--plot")
    assert code == 2
    assert "argument --plot: plots need matplotlib" in err
    assert "pip install" in err


def test_a_tiny_comparison_prints_its_table_and_writes_its_results(tmp_path, capsys):
    out = tmp_path / "eval"
    argv = [
        *TINY,
        "--mechanisms",
        "equal",
        "--mechanisms",
        "none",
        "--seeds",
        "0",
        "--override",
        "max_rounds=1",
        "scoring.reject_negative=false",
        "--policy",
        "always_max",
        "--out",
        str(out),
        "--no-adapters",
    ]
    code, stdout, _ = _main(capsys, *argv)
    assert code == 0
    rows = [line for line in stdout.splitlines() if line.startswith("| tiny")]
    assert [row.split("|")[2].strip() for row in rows] == ["equal", "none", "none - equal"]
    assert "best model: n/a (one seed: no interval" in stdout

    results = json.loads((out / "results.json").read_text())
    assert results["config"]["policy"] == "always_max"
    assert results["mechanisms"] == ["equal", "none"] and results["seeds"] == [0]
    assert results["scenarios"]["tiny"]["max_rounds"] == 1
    runs = {r["mechanism"]: r for r in results["runs"]}
    assert set(runs["equal"]["metrics"]) == set(METRICS)
    pool = results["scenarios"]["tiny"]["incentives"]["reward_pool"]
    # always_max: everyone takes part, no update is rejected: equal pays the whole pool out
    assert runs["equal"]["metrics"]["participation/rate"] == 1.0
    assert runs["equal"]["metrics"]["cost/total_payout"] == pytest.approx(pool)
    assert runs["none"]["metrics"]["cost/total_payout"] == 0.0
    assert runs["none"]["metrics"]["efficiency/gain_per_payout"] is None
    env_folder = out / "envs" / "tiny" / "equal" / "seed-0"
    assert (env_folder / "public.db").is_file()  # each run's ledgers are kept
    assert not (env_folder / "adapters").exists()  # --no-adapters: hashes only

    with (out / "results.csv").open() as file:
        table = list(csv.DictReader(file))
    assert [(r["mechanism"], r["seed"]) for r in table] == [("equal", "0"), ("none", "0")]
    assert float(table[0]["cost/total_payout"]) == pytest.approx(pool)
    assert table[1]["efficiency/gain_per_payout"] == ""

    code, _, err = _main(capsys, *argv)  # the same folder again: refused, results kept
    assert code == 2
    assert "argument --out: " in err and "already holds results" in err


def test_a_learning_policy_trains_on_the_runs_env_then_acts_greedily():
    env = fedenv.parallel_env("tiny", max_rounds=1, device="cpu")
    try:
        controller = evaluate.AgentsPolicy("q_learning,skyway=never", train_episodes=2)(env, 0)
        observations = {org: env.observation_space(org).sample() for org in env.possible_agents}
        actions = controller.act(observations)
    finally:
        env.close()
    learners = {o: p for o, p in controller.team.policies.items() if o != "skyway"}
    assert all(p.episodes_done == 2 for p in learners.values())  # two training episodes
    assert all(p.table for p in learners.values())  # each learned from the steps it played
    assert actions["skyway"] == 0 and set(actions) == set(env.possible_agents)


def test_a_2x2_sweep_writes_the_grid_tables_and_one_figure_per_metric(tmp_path, capsys):
    out = tmp_path / "grid"
    code, stdout, _ = _main(
        capsys, *TINY, "--mechanisms", "equal,none", "--seeds", "0,1", "--policy", "always_min",
        "--override", "max_rounds=1", "--sweep", "reward_pool=5,10", "--sweep", "lora.r=2,4",
        "--out", str(out), "--no-adapters", "--plot")
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    cells = ["tiny[incentives.reward_pool=5,lora.r=2]", "tiny[incentives.reward_pool=5,lora.r=4]",
             "tiny[incentives.reward_pool=10,lora.r=2]", "tiny[incentives.reward_pool=10,lora.r=4]"]
    assert list(results["scenarios"]) == cells
    assert {(r["scenario"], r["seed"]) for r in results["runs"]} == {
        (c, s) for c in cells for s in (0, 1)}  # the same seeds in every cell
    with (out / "grid.csv").open() as file:
        grid = list(csv.DictReader(file))
    assert len(grid) == 4 * 2 * len(METRICS)
    pays = {(r["incentives.reward_pool"], r["lora.r"]): float(r["mean"]) for r in grid
            if r["mechanism"] == "equal" and r["metric"] == "cost/total_payout"}
    assert pays[("5", "2")] == pytest.approx(pays[("10", "2")] / 2)  # one round, pool paid out
    assert sorted(p.name for p in (out / "grid").iterdir()) == sorted(
        m.replace("/", "_") + ".md" for m in METRICS)
    figures = sorted(p.name for p in (out / "plots" / "grid").iterdir())
    assert figures == sorted(m.replace("/", "_") + ".png" for m in METRICS)
    assert "| scenario | incentives.reward_pool | lora.r |" in stdout
    # the tidy per-organization table, as CSV and Parquet, and read back as DataFrames
    results = fedenv.evaluation.load(out)
    orgs = results.orgs
    assert len(orgs) == 4 * 2 * 2 * 3  # cells x mechanisms x seeds x (1 round x 3 organizations)
    assert {"scenario", "cell", "incentives.reward_pool", "lora.r", "mechanism", "seed", "episode",
            "round", "org", "action", "contribution", "payout", "costs", "reward", "accepted",
            "own_domain_score", "domain_score/bank"} <= set(orgs.columns)
    assert set(orgs["action"]) == {1}  # always_min
    equal = orgs[orgs["mechanism"] == "equal"]
    pool = equal.groupby(["cell", "seed"])["payout"].sum()
    assert sorted(set(pool.round(6))) == [5.0, 10.0]  # every update accepted: the pool paid out
    assert (orgs["reward"] - (orgs["payout"] + orgs["model_value"] - orgs["costs"])).abs().max() < 1e-9
    assert (out / "orgs.csv").is_file() and (out / "orgs.parquet").is_file()
    assert len(results.grid) == 4 * 2 * len(METRICS) and len(results.paired) == 4 * len(METRICS)


def test_an_attack_scenario_prints_the_attack_metrics(tmp_path, capsys):
    attack = tmp_path / "false_facts_tiny.toml"
    attack.write_text(
        'extends = "tiny"\n[[organizations]]\nname = "skyway"\nbehaviour = "false_facts"\n'
    )
    argv = [
        "--scenario", str(attack), "--no-progress", "--mechanisms", "shapley", "--reference", "shapley",
        "--seeds", "0",
        "--override", "max_rounds=1", "--policy", "always_max", "--out", str(tmp_path / "eval"),
        "--no-adapters",
    ]
    code, stdout, _ = _main(capsys, *argv)
    assert code == 0
    lines = stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "backdoor ASR" in line)
    header, row = lines[at], lines[at + 2]
    assert "false facts accepted" in header and "honest rejected" in header
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[:2] == ["false_facts_tiny", "shapley"] and len(cells) == len(header.split("|")) - 2
    assert cells[4] == "n/a" and cells[5] != "n/a"  # no backdoor; false facts measured


def test_ray_tasks_give_the_process_pools_results(tmp_path, capsys):
    """--backend ray (a local Ray, 2 CPUs) writes the process pool's results.csv, timing
    aside, and ships every run's ledgers back into <out>/envs, where they verify."""
    pytest.importorskip("ray", reason="needs the optional 'ray' extra")
    from chains import verify_path

    common = [*TINY, "--mechanisms", "shapley", "--seeds", "0,1", "--workers", "2"]
    common += ["--policy", "random", "--override", "max_rounds=2"]
    tables = {}
    for backend in ("process", "ray"):
        out = tmp_path / backend
        code, _, err = _main(capsys, *common, "--backend", backend, "--out", str(out))
        assert code == 0, err
        with (out / "results.csv").open() as file:
            rows = list(csv.DictReader(file))
        tables[backend] = [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
        folder = out / "envs" / "tiny" / "shapley" / "seed-1"
        assert (folder / "public.db").is_file() and list(folder.glob("adapters/e*/r0000/*"))
        assert all(report.ok for report in verify_path(folder))
    assert len(tables["ray"]) == 2 and tables["ray"] == tables["process"]


def test_an_address_needs_the_ray_backend(tmp_path, capsys):
    code, _, err = _main(capsys, *TINY, "--address", "auto", "--out", str(tmp_path / "x"))
    assert code == 2 and "--address" in err and "is the Ray cluster of --backend ray" in err


def _tiny_file(tmp_path, **changes: str) -> str:
    """scenarios/tiny.toml with some lines replaced (``key = value``) or appended."""
    text = (fedenv.scenario.load.SCENARIO_DIR / "tiny.toml").read_text()
    for old, new in changes.items():
        text = text.replace(old, new)
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return str(path)


def test_a_broken_data_file_leaves_no_output_folder(tmp_path, capsys):
    data = tmp_path / "bank.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "hi"},
                                    {"role": "assistant", "content": "hello"}]})
    data.write_text(good + "\n" + '{"messages": [{"role": "user"}]}\n')
    scenario = _tiny_file(tmp_path, **{'domain = "bank"': 'domain = "bank"\ndata_path = "bank.jsonl"'})
    out = tmp_path / "results" / "eval"
    code, _, err = _main(capsys, "--scenario", scenario, "--no-progress", "--seeds", "0",
                         "--mechanisms", "equal", "--override", "max_rounds=1", "--out", str(out))
    assert code == 1 and f"{data}:2: messages[0] is missing content" in err
    assert "Traceback" not in err and not out.exists()


def test_a_device_that_is_not_here_is_blamed_on_the_option_that_chose_it(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is here")
    out = tmp_path / "eval"
    code, _, err = _main(capsys, *TINY, "--device", "cuda", "--out", str(out))
    assert code == 2 and "argument --device: 'cuda' requested but CUDA is not available" in err
    code, _, err = _main(capsys, *TINY, "--override", "device=cuda:1", "--out", str(out))
    assert code == 2 and "argument --override: device: 'cuda:1' requested" in err
    scenario = _tiny_file(tmp_path, **{'device = "cpu"': 'device = "cuda"'})
    code, _, err = _main(capsys, "--scenario", scenario, "--no-progress", "--out", str(out))
    assert code == 2 and "argument --scenario: tiny: device: 'cuda' requested" in err
    assert not out.exists()


def test_the_output_folder_is_new_and_has_one_writer(tmp_path, capsys):
    from fedenv.folder_lock import FolderLock

    taken = tmp_path / "taken"
    (taken / "notes.txt").parent.mkdir()
    (taken / "notes.txt").write_text("mine")
    code, _, err = _main(capsys, *TINY, "--out", str(taken))
    assert code == 2 and "argument --out: " in err and "is not empty" in err
    busy = tmp_path / "busy"
    busy.mkdir()
    with FolderLock(busy, purpose="evaluate.py output folder"):  # another evaluate.py writes it
        code, _, err = _main(capsys, *TINY, "--seeds", "0", "--mechanisms", "equal",
                             "--override", "max_rounds=1", "--out", str(busy))
    assert code == 1 and "is already open in this process" in err
    assert busy.is_dir() and sorted(p.name for p in busy.iterdir()) == [".fedenv.lock"]


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/absolute", "x" * 300, "a/b", ".."])
def test_a_hostile_scenario_name_is_refused_before_anything_is_written(tmp_path, capsys, name):
    scenario = _tiny_file(tmp_path, **{'name = "tiny"': f"name = {json.dumps(name)}"})
    out = tmp_path / "eval"
    code, _, err = _main(capsys, "--scenario", scenario, "--no-progress", "--out", str(out))
    assert code == 2 and "argument --scenario: " in err and "name: must be 1-128 letters" in err
    assert not out.exists() and not (tmp_path / "escaped").exists()


def test_every_file_an_evaluation_writes_lies_in_its_output_folder(capsys, files_written):
    """From an empty working directory, temporary files redirected: --out holds everything
    (the runs' ledgers included), and nothing else was left anywhere."""
    code, _, err = _main(capsys, *TINY, "--seeds", "0", "--mechanisms", "equal,loo",
                         "--override", "max_rounds=1", "--out", "out")
    assert code == 0, err
    written = files_written()
    assert all(p.startswith("work/out/") for p in written), written
    assert "work/out/results.csv" in written
    assert any(p.startswith("work/out/envs/") and p.endswith("public.db") for p in written)
