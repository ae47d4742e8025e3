"""train_agents.py as a user runs it: options, errors, and a run killed with SIGKILL then resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support_envs import read_scalars

import train_agents
from agents.serialization import load_state
from chains import verify_path

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ["--env", "support_envs:parallel_env", "--no-progress"]


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = train_agents.main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_the_options(capsys):
    code, out, _ = _main(capsys, "--help")
    assert code == 0
    for option in ("--scenario", "--algo", "--episodes", "--seed", "--device", "--run-name",
                   "--log-interval", "--checkpoint-interval", "--resume",
                   "--q-learning.epsilon-decay", "--dqn.target-update-interval"):
        assert option in out


@pytest.mark.parametrize("argv, message", [
    (["--algo", "sarsa"], "argument --algo: unknown algorithm 'sarsa'"),
    (["--algo", "org_7=random"], "argument --algo: unknown organization(s) 'org_7'"),
    (["--episodes", "0"], "argument --episodes: must be >= 1"),
    (["--episodes", "many"], "--episodes: invalid literal for int() with base 10: 'many'"),
    (["--q-learning.gamma", "1.5"], "argument --q-learning.gamma: must be <= 1.0, got 1.5"),
    (["--dqn.gamma", "1.5"], "argument --dqn.gamma: must be <= 1.0, got 1.5"),
    (["--q-learning.continuation", "next"],
     "argument --q-learning.continuation: expected one of state_free, state, got 'next'"),
    (["--q-learning.backoff", "-1"], "argument --q-learning.backoff: must be >= 0.0, got -1.0"),
    (["--q-learning.split-z", "-2"], "argument --q-learning.split-z: must be >= 0.0, got -2.0"),
    (["--q-learning.state", "wealth=3"], "argument --q-learning.state: 'wealth=3': unknown"),
    (["--override", "max_rounds"], "argument --override: expected KEY=VALUE, got 'max_rounds'"),
    (["--scenario", "nowhere"], "argument --scenario: cannot create the env for 'nowhere'"),
    (["--resume", "no/such/run"], "argument --resume: no/such/run is not a run folder"),
    (["--env", "no_such_module:make"], "argument --env: cannot load"),
    (["--device", "tpu"], "argument --device: must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    (["--device", "mps"], "argument --device: 'mps' is not supported"),
])
def test_bad_options_exit_2_naming_the_option(tmp_path, capsys, argv, message):
    code, _, err = _main(capsys, *SUPPORT, "--scenario", "tiny", "--runs-dir", str(tmp_path),
                         *argv)
    assert code == 2
    assert message in err
    assert list(tmp_path.iterdir()) == []  # a refused run leaves no folder behind


def test_a_run_prints_its_summary_and_where_the_logs_are(tmp_path, capsys):
    code, out, _ = _main(capsys, *SUPPORT, "--scenario", "tiny", "--runs-dir", str(tmp_path),
                         "--run-name", "cli", "--episodes", "3", "--algo",
                         "always_max,org_1=never")
    assert code == 0
    assert "org_1         never" in out and "always_max" in out
    assert "3 episodes, 15 env steps" in out
    assert f"tensorboard --logdir {tmp_path}" in out


def test_resume_from_the_command_line_keeps_the_runs_identity(tmp_path, capsys):
    base = [*SUPPORT, "--scenario", "tiny", "--runs-dir", str(tmp_path), "--run-name", "r",
            "--algo", "random", "--seed", "3"]
    assert _main(capsys, *base, "--episodes", "2")[0] == 0
    resume = ["--resume", str(tmp_path / "r"), "--no-progress"]
    refused = [(["--seed", "4"], "argument --seed: cannot change when resuming (the run has 3)"),
               (["--algo", "never"], "argument --algo: cannot change"),
               (["--q-learning.gamma", "0.5"], "argument --q-learning.gamma: cannot")]
    for changed, message in refused:
        code, _, err = _main(capsys, *resume, *changed)
        assert code == 2 and message in err, err
    code, out, _ = _main(capsys, *resume, "--episodes", "4", "--seed", "3", "--algo", "random")
    assert code == 0 and "4 episodes, 20 env steps" in out  # resumable or unchanged: accepted


def _tensorboard_view(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    return {tag: values for tag, values in read_scalars(run_dir).items() if tag != "charts/SPS"}


def test_sigkill_then_resume_loses_no_episode_and_duplicates_no_step(tmp_path, capsys):
    args = [*SUPPORT, "--scenario", "slow", "--runs-dir", str(tmp_path), "--episodes", "20",
            "--checkpoint-interval", "3", "--algo", "q_learning,org_2=myopic_greedy"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
    command = [sys.executable, str(ROOT / "train_agents.py"), *args, "--run-name", "killed"]
    checkpoint = tmp_path / "killed" / "checkpoints" / "latest.pt"
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if checkpoint.exists() and load_state(checkpoint)["episode"] >= 6:
                break
            time.sleep(0.02)
        time.sleep(0.15)  # let it play on past the checkpoint, logging what must be replayed
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()
    killed_at = load_state(checkpoint)["episode"]
    assert 6 <= killed_at < 20

    resumed = subprocess.run([sys.executable, str(ROOT / "train_agents.py"), "--resume",
                              str(tmp_path / "killed"), "--no-progress"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                             check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed {tmp_path / 'killed'} at episode {killed_at}" in resumed.stdout

    code, reference_out, _ = _main(capsys, *args, "--run-name", "reference")
    assert code == 0
    summary = resumed.stdout.split("\n\n", 1)[1].split("\n\n")[0]
    assert summary and summary in reference_out  # same per-organization totals, to the digit

    killed_view = _tensorboard_view(tmp_path / "killed")
    assert [v for _, v in killed_view["charts/episode"]] == list(range(1, 21))
    for tag, values in killed_view.items():
        steps = [step for step, _ in values]
        assert len(steps) == len(set(steps)), f"duplicate steps in {tag}"
    assert killed_view == _tensorboard_view(tmp_path / "reference")


def test_one_episode_on_fedenv_tiny_from_the_command_line(tmp_path, capsys):
    code, out, _ = _main(capsys, "--scenario", "tiny", "--episodes", "1", "--runs-dir",
                         str(tmp_path), "--run-name", "fed", "--device", "cpu", "--no-progress",
                         "--algo", "q_learning,citycare=shared_dqn,skyway=myopic_greedy")
    assert code == 0
    for org in ("northbank", "citycare", "skyway"):
        assert org in out
    run = tmp_path / "fed"
    assert (run / "env" / "config.json").is_file()  # the env's ledgers live in the run folder
    scalars = read_scalars(run)
    for tag in ("fl/global_score", "fl/domain_score/bank", "chain/public_height",
                "charts/participation/northbank", "incentives/payout/citycare",
                "costs/total/skyway", "charts/SPS"):
        assert tag in scalars, tag
    assert scalars["chain/public_height"][0][1] > 0
    # an auditor verifies the whole training run, adapters included, from its folder alone
    reports = verify_path(run)
    assert [r.kind for r in reports].count("public-ledger") == 1
    assert all(r.ok for r in reports), [(r.path, r.problems[:1]) for r in reports if not r.ok]
    adapter = next((run / "env" / "adapters").rglob("northbank.safetensors"))
    adapter.write_bytes(adapter.read_bytes()[:-1] + b"\x00")
    bad = [p for r in verify_path(run) for p in r.problems]
    assert any(adapter.name in p.detail or adapter.name in p.reason for p in bad), bad


def test_a_missing_fedenv_scenario_is_named(tmp_path, capsys):
    code, _, err = _main(capsys, "--scenario", "atlantis", "--runs-dir", str(tmp_path))
    assert code == 2 and "argument --scenario: 'atlantis': no such file" in err
    assert list(tmp_path.iterdir()) == []


def _summary(out: str) -> str:
    """The per-organization table a run prints at its end."""
    return next(b.strip() for b in out.split("\n\n") if b.strip().startswith("organization"))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("files, message", [
    ({"config.json": b'{"format": "fedenv.env/1", "scenario": {}, "env": {}}'},
     "is not a train_agents.py run folder of this version (config.json format 'fedenv.env/1'"),
    ({"config.json": b"{not json"}, "config.json is not a run's config: Expecting"),
    ({"config.json": b'{"format": "train_agents.run/0", "config": {}}'}, "format 'train_agents.run/0'"),
    ({"config.json": b'{"scenario": "tiny", "algo": "random"}'}, "config.json format None"),
    ({"notes.txt": b"mine"}, "is not a train_agents.py run folder (no config.json)"),
])
def test_resume_refuses_a_foreign_folder_and_leaves_it_byte_identical(tmp_path, capsys, files,
                                                                      message):
    folder = tmp_path / "theirs"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    before = _snapshot(folder)
    code, _, err = _main(capsys, *SUPPORT, "--resume", str(folder))
    assert code == 2 and "argument --resume: " in err and message in err, err
    assert "Traceback" not in err and _snapshot(folder) == before


def test_resume_of_a_runs_env_folder_points_to_the_run(tmp_path, capsys):
    run = tmp_path / "r"
    assert _main(capsys, *SUPPORT, "--scenario", "tiny", "--runs-dir", str(tmp_path),
                 "--run-name", "r", "--episodes", "1")[0] == 0
    (run / "env").mkdir()
    (run / "env" / "config.json").write_text('{"format": "fedenv.env/1"}')
    before = _snapshot(run)
    code, _, err = _main(capsys, *SUPPORT, "--resume", str(run / "env"))
    assert code == 2 and f"did you mean --resume {run}?" in err
    assert _snapshot(run) == before


def _train_command(tmp_path: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
    return [sys.executable, str(ROOT / "train_agents.py"), *args], env


def test_two_writers_the_second_fails_cleanly_and_the_first_equals_a_solo_run(tmp_path, capsys):
    args = [*SUPPORT, "--scenario", "slow", "--runs-dir", str(tmp_path), "--episodes", "25",
            "--checkpoint-interval", "5", "--seed", "2"]
    command, env = _train_command(tmp_path, *args, "--run-name", "shared")
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "shared" / ".fedenv.lock"
    try:
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text() and (tmp_path / "shared" / "config.json")
                   .exists()) and time.monotonic() < deadline:
            time.sleep(0.01)
        second = _main(capsys, *args, "--run-name", "shared")
        resumed = _main(capsys, *SUPPORT, "--resume", str(tmp_path / "shared"))
    finally:
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second[0] == 2 and "already holds a run" in second[2], second
    assert resumed[0] == 1 and f"is in use by PID {first.pid} on host" in resumed[2], resumed
    assert "train_agents.py --env support_envs:parallel_env" in resumed[2]
    assert "Traceback" not in resumed[2]
    assert len(list((tmp_path / "shared").glob("events.out.tfevents.*"))) == 1

    code, solo, _ = _main(capsys, *args, "--run-name", "solo")
    assert code == 0
    assert _summary(out) == _summary(solo)  # the same totals, to the digit
    assert _tensorboard_view(tmp_path / "shared") == _tensorboard_view(tmp_path / "solo")


def test_a_full_disk_is_one_message_and_the_run_resumes_to_the_same_results(
        tmp_path, capsys, monkeypatch):
    """The second checkpoint cannot be written (ENOSPC): one message naming the file, the space
    and how to resume; resumed once space is back, the run ends as one never interrupted."""
    import errno

    from agents import training

    args = [*SUPPORT, "--scenario", "tiny", "--runs-dir", str(tmp_path), "--episodes", "9",
            "--checkpoint-interval", "3", "--seed", "4"]
    saved, real_save = [], training.atomic_save

    def save_until_full(state, path):
        if len(saved) == 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        saved.append(path)
        real_save(state, path)

    monkeypatch.setattr(training, "atomic_save", save_until_full)
    code, _, err = _main(capsys, *args, "--run-name", "full")
    run = tmp_path / "full"
    assert code == 1 and "Traceback" not in err
    assert err.count("error:") == 1 and "cannot write the run folder: the disk is full (" in err
    assert f"{run / 'checkpoints' / 'latest.pt'}; " in err and " free of " in err
    assert f"--resume {run} continues from its last checkpoint (episode 3)" in err
    monkeypatch.setattr(training, "atomic_save", real_save)  # space is back
    code, out, _ = _main(capsys, *SUPPORT, "--resume", str(run))
    assert code == 0 and f"resumed {run} at episode 3" in out
    assert _main(capsys, *args, "--run-name", "solo")[0] == 0
    assert _tensorboard_view(run) == _tensorboard_view(tmp_path / "solo")


def test_a_real_full_filesystem_then_resume(tmp_path, capsys):
    """fedenv's tiny scenario on a 2 MiB tmpfs (root only; the first checkpoint fits, the four
    episodes do not): every kind of write may hit the full disk first; the run stops with one
    message, and resumes once the filesystem grows."""
    from support_disk import small_filesystem

    small = tmp_path / "small"
    args = ["--scenario", "tiny", "--episodes", "4", "--checkpoint-interval", "1", "--device",
            "cpu", "--no-progress", "--seed", "5"]
    with small_filesystem(small, 2048) as resize:
        code, _, err = _main(capsys, *args, "--runs-dir", str(small), "--run-name", "r")
        assert code == 1 and "Traceback" not in err and err.count("error:") == 1, err
        assert "the disk is full" in err and f"--resume {small / 'r'}" in err
        resize(65536)
        code, out, _ = _main(capsys, "--resume", str(small / "r"), "--no-progress")
        assert code == 0, out
        assert all(r.ok for r in verify_path(small / "r")), verify_path(small / "r")
    code, solo, _ = _main(capsys, *args, "--runs-dir", str(tmp_path), "--run-name", "solo")
    assert code == 0 and _summary(out) == _summary(solo)


@pytest.mark.parametrize("name", ["../escaped", "../../escaped", "/tmp/absolute", "a/b", "..",
                                  ".", "x" * 300, "tab\there"])
def test_a_run_name_that_is_not_one_folder_is_refused_before_anything_is_written(
        tmp_path, capsys, name):
    runs = tmp_path / "runs"
    code, _, err = _main(capsys, *SUPPORT, "--scenario", "tiny", "--runs-dir", str(runs),
                         "--run-name", name, "--episodes", "1")
    assert code == 2, err
    assert ("argument --run-name: must be a plain folder name" in err
            or "argument --run-name: must be at most 200 characters" in err), err
    assert list(tmp_path.iterdir()) == [] and not Path("/tmp/absolute").exists()


def test_every_file_a_run_writes_lies_in_its_run_folder(capsys, files_written):
    """fedenv's tiny scenario from an empty working directory, temporary files redirected:
    afterwards the run folder holds everything, and nothing else was left anywhere."""
    code, _, err = _main(capsys, "--scenario", "tiny", "--episodes", "2", "--device", "cpu",
                         "--no-progress", "--run-name", "mine", "--checkpoint-interval", "1")
    assert code == 0, err
    written = files_written()
    assert written and all(p.startswith("work/runs/mine/") for p in written), written
    assert "work/runs/mine/env/config.json" in written
    assert "work/runs/mine/checkpoints/latest.pt" in written
