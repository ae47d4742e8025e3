"""Unlearning an organization on the tiny scenario: the rebuilt model, the purge, the certificate
on the channel and the public chain, ``chains verify``, determinism, and bad requests."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

import fedenv
from chains.verify import verify_path
from fedenv.engine.global_state import split_global_state
from fedenv.engine.lora import adapter_digest, canonical_bytes
from fedenv.errors import ConfigError, UnknownOrganizationError, UnlearningError
from fedenv.ledgers import CHAINCODE, collection_name, round_key
from fedenv.run_folder import adapter_path
from fedenv.unlearning.replay import load_adapter, replayed_states

FORGOTTEN = "northbank"
ROUNDS = 3
SETTINGS = {"max_rounds": 5, "scoring.reject_negative": False, "benchmark.dialogues_per_domain": 8}
"""The tiny scenario with its default defences (every update rescaled to its level's norm
budget), every update accepted, a larger benchmark."""


def _play(run_dir: Path, method: str = "exact_replay", **overrides):
    """Three rounds at level 1, a snapshot of the folder, then ``FORGOTTEN`` forgotten."""
    env = fedenv.parallel_env("tiny", run_dir=run_dir, **{**SETTINGS, **overrides})
    env.reset(seed=3)
    for _ in range(ROUNDS):
        env.step({a: 1 for a in env.agents})
    snapshot = run_dir.parent / f"{run_dir.name}-before"
    shutil.copytree(run_dir, snapshot)
    before = env.unwrapped._player.global_result
    env.unwrapped.request_unlearning(FORGOTTEN, method=method)
    step = env.step({a: 1 for a in env.agents})
    return env, snapshot, before, step


@pytest.fixture(scope="module")
def unlearned(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("unlearning") / "run"
    env, snapshot, before, step = _play(run_dir)
    outcome = env.unwrapped.unlearning_log[0]
    outcomes = list(env.unwrapped.round_log[:ROUNDS])
    channel = env.unwrapped.run.ledgers.channels["consortium"]
    stored = {
        peer.identity.msp_id if hasattr(peer, "identity") else str(i): peer.state.get(
            CHAINCODE, f"unlearning/{outcome.certificate_file.split('/')[-1][:-5]}"
        )
        for i, peer in enumerate(channel.peers)
    }
    env.close()
    return {
        "run": run_dir,
        "snapshot": snapshot,
        "before": before,
        "step": step,
        "outcome": outcome,
        "channel_state": stored,
        "outcomes": outcomes,
    }


def test_the_forgotten_org_is_done_and_reported_in_its_infos(unlearned):
    _, rewards, terminations, truncations, infos = unlearned["step"]
    assert terminations[FORGOTTEN] and not truncations[FORGOTTEN]
    assert infos[FORGOTTEN]["participated"] is False and rewards[FORGOTTEN] == 0.0  # no clawback
    info = infos[FORGOTTEN]["unlearning"]
    assert (
        info["method"] == "exact_replay"
        and info["certificate"] == unlearned["outcome"].certificate_digest
    )
    for key in (
        "forget_fact_accuracy",
        "retain_fact_accuracy",
        "mia_auc",
        "oracle_mia_auc",
        "oracle_score_gap",
        "seconds_exact_replay",
        "seconds_retrain",
    ):
        assert key in info


def test_exact_replay_is_close_to_the_oracle_and_keeps_the_others(unlearned):
    m = unlearned["outcome"].measures
    assert abs(m["forget_fact_accuracy"] - m["oracle_forget_fact_accuracy"]) <= 0.05
    assert abs(m["retain_fact_accuracy"] - m["before_retain_fact_accuracy"]) <= 0.03
    assert 0.0 <= m["mia_auc"] <= 1.0


def test_the_certificate_is_on_the_channel_and_its_hash_on_the_public_chain(unlearned):
    outcome, run = unlearned["outcome"], unlearned["run"]
    data = (run / outcome.certificate_file).read_bytes()
    assert hashlib.sha256(data).hexdigest() == outcome.certificate_digest
    certificate = json.loads(data)
    assert certificate["org"] == FORGOTTEN and certificate["method"] == "exact_replay"
    assert [r["round"] for r in certificate["removed"]] == list(range(ROUNDS))
    assert certificate["global"]["digest"] == outcome.global_digest
    for value, _version in unlearned["channel_state"].values():  # every peer holds it
        assert value == data
    from chains.public_ledger import PublicLedger

    with PublicLedger.open(run / "public.db") as ledger:
        anchors = [tx.payload for _, tx in ledger.transactions("anchor")]
    events = {p.get("event"): p for p in anchors}
    assert events["unlearning-certificate"]["digest"] == outcome.certificate_digest
    assert events["unlearning-request"]["org"] == FORGOTTEN


def _unique_chunks(update: bytes, base: bytes, size: int = 64) -> list[bytes]:
    """Chunks of the update's tensor data found in no tensor of the base state."""
    header = 8 + int.from_bytes(update[:8], "little")
    body = update[header:]
    chunks = [body[i : i + size] for i in range(0, len(body) - size, size * 8)]
    return [c for c in chunks if c not in base and c.strip(b"\0")]


def test_the_forgotten_updates_bytes_are_gone_from_every_file(unlearned):
    snapshot, run = unlearned["snapshot"], unlearned["run"]
    base = (snapshot / "adapters/base.safetensors").read_bytes()
    chunks = []
    for r in range(ROUNDS):
        update = snapshot / f"adapters/{round_key(0, r).replace('-', '/')}/{FORGOTTEN}.safetensors"
        chunks += _unique_chunks(update.read_bytes(), base)
    assert len(chunks) > 10

    def holders(folder: Path) -> set[str]:
        found = set()
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                if any(c in data for c in chunks):
                    found.add(str(path.relative_to(folder)))
        return found

    before = holders(snapshot)  # the test can fail: the bytes were there, in files and the peer
    assert any(name.endswith(f"{FORGOTTEN}.safetensors") for name in before)
    assert any(f"peer0.{FORGOTTEN}.db" in name for name in before)  # its side store (or WAL)
    assert holders(run) == set()


def test_the_purge_keeps_the_hashes(unlearned):
    certificate = json.loads(
        (unlearned["run"] / unlearned["outcome"].certificate_file).read_bytes()
    )
    assert all(len(r["digest"]) == 64 for r in certificate["removed"])
    assert collection_name(FORGOTTEN) == f"{FORGOTTEN}-updates"


def test_chains_verify_passes_and_recomputes_the_replay(unlearned, tmp_path):
    assert all(r.ok for r in verify_path(unlearned["run"])), [
        r.summary() for r in verify_path(unlearned["run"]) if not r.ok
    ]
    # the certificate's adapter is recomputed: a wrong stored global state is found even when
    # its file is consistent with itself
    certificate = json.loads(
        (unlearned["run"] / unlearned["outcome"].certificate_file).read_bytes()
    )
    state = load_adapter((unlearned["run"] / certificate["global"]["artifact"]).read_bytes())
    assert state  # a real adapter file


def test_a_tampered_stored_update_fails_verify_naming_it(unlearned, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(unlearned["run"], run)
    certificate = json.loads((run / unlearned["outcome"].certificate_file).read_bytes())
    name = certificate["replay"][0]["updates"][0]["artifact"]
    data = bytearray((run / name).read_bytes())
    data[-5] ^= 0x01
    (run / name).write_bytes(bytes(data))
    failed = [r for r in verify_path(run) if not r.ok]
    details = [(p.reason, p.detail) for r in failed for p in r.problems]
    assert any(reason == "unlearning-digest" and name in detail for reason, detail in details)
    assert any(reason == "artifact-digest" and name in detail for reason, detail in details)


def test_a_tampered_certificate_fails_verify_naming_it(unlearned, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(unlearned["run"], run)
    name = unlearned["outcome"].certificate_file
    text = (run / name).read_text().replace('"method":"exact_replay"', '"method":"retrain"')
    (run / name).write_text(text)
    details = [p.detail for r in verify_path(run) if not r.ok for p in r.problems]
    assert any(name in d for d in details)


def test_the_same_seed_gives_the_same_certificate(unlearned, tmp_path):
    """Re-running the episode and the unlearning from the same seed gives the same certificate,
    byte for byte (what a run killed during unlearning resumes to)."""
    env, _, _, _ = _play(tmp_path / "again")
    again = env.unwrapped.unlearning_log[0]
    env.close()
    assert again.certificate_digest == unlearned["outcome"].certificate_digest


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_bad_requests_are_refused_and_change_nothing(tmp_path):
    env = fedenv.parallel_env("tiny", run_dir=tmp_path / "run", **SETTINGS)
    env.reset(seed=3)
    raw = env.unwrapped
    files, model = _digests(tmp_path / "run"), raw._player.engine.global_digest
    with pytest.raises(UnlearningError, match="never took part"):
        raw.request_unlearning(FORGOTTEN)
    env.step({a: 1 if a != "citycare" else 0 for a in env.agents})
    files, model = _digests(tmp_path / "run"), raw._player.engine.global_digest
    with pytest.raises(UnknownOrganizationError):
        raw.request_unlearning("acme")
    with pytest.raises(ConfigError, match="method"):
        raw.request_unlearning(FORGOTTEN, method="forget_harder")
    with pytest.raises(UnlearningError, match="never took part"):
        raw.request_unlearning("citycare")
    raw.request_unlearning(FORGOTTEN)
    with pytest.raises(UnlearningError, match="already forgotten"):
        raw.request_unlearning(FORGOTTEN)
    assert _digests(tmp_path / "run") == files and raw._player.engine.global_digest == model
    env.close()


def test_a_method_the_aggregator_cannot_work_with_is_refused(tmp_path):
    env = fedenv.parallel_env("tiny", run_dir=tmp_path / "run", aggregator="flora", **SETTINGS)
    env.reset(seed=3)
    env.step({a: 1 for a in env.agents})
    files = _digests(tmp_path / "run")
    with pytest.raises(ConfigError, match="cannot work with aggregator 'flora'"):
        env.unwrapped.request_unlearning(FORGOTTEN, method="calibrated_replay")
    assert _digests(tmp_path / "run") == files
    env.close()


def test_replaying_every_accepted_update_gives_the_stored_global_states(tmp_path):
    """The replay is the round's own commit under the default defences (norm rescaling, the
    recorded shares, the engine's transition): replaying every accepted update, forgetting
    nobody, gives each round's stored global state byte for byte."""
    env = fedenv.parallel_env(
        "tiny", run_dir=tmp_path / "run", **{**SETTINGS, "scoring.reject_negative": True}
    )
    env.reset(seed=3)
    for levels in ({"northbank": 1, "citycare": 2, "skyway": 1}, {"northbank": 2, "citycare": 1,
                   "skyway": 2}, {"northbank": 1, "citycare": 0, "skyway": 2}):
        env.step(levels)
    unwrapped = env.unwrapped
    assert unwrapped.scenario.defence.norm == "normalize"
    assert any(  # the defences changed what was committed: the test can tell
        any(r.startswith("norm:") for row in o.orgs.values() for r in row.reasons)
        for o in unwrapped.round_log
    )
    record = unwrapped._unlearner.episode_record(None, unwrapped.round_log)
    base = record.global_after(-1)
    states = replayed_states(
        record.commit_rule,
        base,
        [record.replay_round(r) for r in record.rounds],
        initial=split_global_state(base)[0],
    )
    for outcome, state in zip(unwrapped.round_log, states, strict=True):
        stored = unwrapped.run.read(adapter_path(outcome.episode, outcome.round, "global"))
        assert canonical_bytes(state) == stored
        assert adapter_digest(state) == outcome.global_digest
    env.close()


def test_an_env_copy_carries_a_pending_request_to_the_same_certificate(tmp_path):
    import copy

    env = fedenv.parallel_env("tiny", run_dir=tmp_path / "run", **SETTINGS)
    env.reset(seed=3)
    env.step({a: 1 for a in env.agents})
    env.unwrapped.request_unlearning(FORGOTTEN)
    twin = copy.deepcopy(env.unwrapped)
    for e in (env.unwrapped, twin):
        e.step({a: 1 for a in e.agents})
    assert (
        twin.unlearning_log[0].certificate_digest
        == env.unwrapped.unlearning_log[0].certificate_digest
    )
    twin.close()
    env.close()


_CHILD = """
import os, pickle, signal, sys
import fedenv
from fedenv.ledgers import forgetting
from fedenv.round import RoundPlayer
from fedenv.unlearning import unlearner

def die(*_, **__):
    os.kill(os.getpid(), signal.SIGKILL)

def after(function):
    def wrapped(*args, **kwargs):
        result = function(*args, **kwargs)
        die()
        return result
    return wrapped

env = fedenv.parallel_env("tiny", run_dir=sys.argv[1], **SETTINGS)
env.reset(seed=3)
for _ in range(2):
    env.step({a: 1 for a in env.agents})
env.unwrapped.request_unlearning(FORGOTTEN)
with open(sys.argv[2], "wb") as file:  # the env's state before the step, saved
    pickle.dump(env.unwrapped.__getstate__(), file)
point = sys.argv[3]
if point == "before-purge":
    unlearner.purge_updates = die
elif point == "after-purge":
    unlearner.purge_updates = after(unlearner.purge_updates)
elif point == "after-certificate":  # on the channel, not yet anchored on the public chain
    anchored = forgetting._anchored
    forgetting._anchored = lambda ledgers, payload: (
        die() if payload["event"] == forgetting.CERTIFICATE else anchored(ledgers, payload)
    )
elif point == "after-seal":  # the unlearning sealed, the round not yet played
    RoundPlayer.play = die
env.step({a: 1 for a in env.agents})
print("finished", flush=True)
"""


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    env = fedenv.parallel_env(
        "tiny", run_dir=tmp_path_factory.mktemp("uninterrupted") / "run", **SETTINGS
    )
    env.reset(seed=3)
    for _ in range(2):
        env.step({a: 1 for a in env.agents})
    env.unwrapped.request_unlearning(FORGOTTEN)
    env.step({a: 1 for a in env.agents})
    outcome = env.unwrapped.round_log[-1]
    result = (env.unwrapped.unlearning_log[0].certificate_digest, outcome.global_digest,
              outcome.public_height)
    env.close()
    return result


@pytest.mark.parametrize("point", ["before-purge", "after-purge", "after-certificate",
                                   "after-seal"])
def test_a_run_killed_during_unlearning_resumes_in_place_to_the_same_certificate(
    tmp_path, uninterrupted, point
):
    """SIGKILL at each point of the unlearning step, then the step repeated in the killed
    folder itself (``FedOrgParallelEnv.reopen`` of the state saved before it): the same
    certificate, global state and public height as the uninterrupted run, and the folder
    verifies (no purge, certificate or anchor twice)."""
    import pickle
    import signal
    import subprocess
    import sys

    from fedenv.fedorg import FedOrgParallelEnv
    from fedenv.unlearning.journal import journal_file

    run, saved = tmp_path / "run", tmp_path / "saved.pkl"
    script = f"SETTINGS = {SETTINGS!r}\nFORGOTTEN = {FORGOTTEN!r}\n" + _CHILD
    child = subprocess.run(
        [sys.executable, "-c", script, str(run), str(saved), point],
        check=False, capture_output=True, text=True, timeout=300,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    key = f"e00000-unlearn-{FORGOTTEN}"
    assert (run / journal_file(key)).is_file()  # killed after the journal was written
    erased = run / adapter_path(0, 0, FORGOTTEN)
    assert erased.exists() == (point in ("before-purge", "after-purge"))  # erased after it

    state = pickle.loads(saved.read_bytes())
    resumed = FedOrgParallelEnv.reopen(state, run)
    resumed.step({a: 1 for a in resumed.agents})
    outcome = resumed.round_log[-1]
    assert (resumed.unlearning_log[0].certificate_digest, outcome.global_digest,
            outcome.public_height) == uninterrupted
    assert not erased.exists()
    assert all(r.ok for r in verify_path(run)), [r for r in verify_path(run) if not r.ok]
    resumed.close()


def test_a_journal_of_another_request_is_refused_naming_it(tmp_path):
    from fedenv.unlearning.journal import journal_file

    env = fedenv.parallel_env("tiny", run_dir=tmp_path / "run", **SETTINGS)
    env.reset(seed=3)
    env.step({a: 1 for a in env.agents})
    journal = env.unwrapped.run.path / journal_file(f"e00000-unlearn-{FORGOTTEN}")
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text('{"format": "fedenv-unlearning-journal/1", "request": {"org": "x"}}')
    env.unwrapped.request_unlearning(FORGOTTEN)
    with pytest.raises(UnlearningError, match="was started here"):
        env.step({a: 1 for a in env.agents})
    env.close()


def test_without_stored_adapters_a_request_is_refused(tmp_path):
    env = fedenv.parallel_env("tiny", run_dir=tmp_path / "run", store_adapters=False, **SETTINGS)
    env.reset(seed=3)
    env.step({a: 1 for a in env.agents})
    with pytest.raises(UnlearningError, match="store_adapters=True"):
        env.unwrapped.request_unlearning(FORGOTTEN)
    env.close()
