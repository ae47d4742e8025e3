from __future__ import annotations

import copy
import hashlib
import math

import pytest
import torch

from fedenv.data.benchmark import Benchmark
from fedenv.engine.demo import org_datasets
from fedenv.engine.federation import (
    ClientUpdate,
    FederatedEngine,
    Participant,
    RoundResult,
)
from fedenv.engine.lora import (
    LORA_A_SUFFIX,
    LORA_B_SUFFIX,
    adapter_digest,
    clone_adapter,
    dense_deltas,
)
from fedenv.engine.settings import EngineConfig, LoraSettings, TrainingSettings
from fedenv.errors import (
    ConfigError,
    InvalidUpdateError,
    NoParticipantsError,
    UnknownOrganizationError,
)

AGGREGATORS = ("fedavg", "ffa", "flora")


@pytest.fixture(scope="module")
def world(test_base):
    model, tokenizer = test_base
    benchmark = Benchmark.generated(
        tokenizer, ["bank", "clinic", "insurance", "telecom"], 2, 0, batch_size=64, device="cpu"
    )
    return model, tokenizer, org_datasets(3, 24, seed=0), benchmark


@pytest.fixture
def make_engine(world):
    model, tokenizer, datasets, benchmark = world

    def make(aggregator: str = "fedavg", **overrides) -> FederatedEngine:
        lora = overrides.pop("lora", LoraSettings(r=4, alpha=8))
        training = TrainingSettings(learning_rate=1e-2, max_len=96, aggregator=aggregator)
        config = EngineConfig(lora=lora, training=training, **overrides)
        return FederatedEngine(copy.deepcopy(model), tokenizer, datasets, benchmark, config)

    return make


def participants(engine: FederatedEngine, steps: int = 3) -> list[Participant]:
    return [Participant(org, steps) for org in engine.orgs]


def model_state(engine: FederatedEngine) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in engine.model.state_dict().items()}


def assert_same_state(engine: FederatedEngine, state: dict[str, torch.Tensor]) -> None:
    now = engine.model.state_dict()
    assert now.keys() == state.keys()
    changed = [k for k in state if not torch.equal(now[k], state[k])]
    assert not changed, f"model changed: {changed[:3]}"


# ----------------------------------------------------------------------------- determinism


def test_same_inputs_give_identical_update_digests(make_engine):
    first, second = make_engine(), make_engine()
    assert first.global_digest == second.global_digest
    a = first.train_updates(participants(first), round_seed=7)
    b = second.train_updates(list(reversed(participants(second))), round_seed=7)
    assert {u.org: u.digest for u in a} == {u.org: u.digest for u in b}
    again = first.train_updates(participants(first), round_seed=7)  # nothing was committed
    assert [u.digest for u in again] == [u.digest for u in a]
    other = first.train_updates(participants(first), round_seed=8)
    assert not {u.digest for u in other} & {u.digest for u in a}
    assert first.commit(a) == second.commit(list(reversed(b)))  # order does not matter


def test_training_leaves_the_global_rng_alone(make_engine):
    engine = make_engine(lora=LoraSettings(r=4, alpha=8, dropout=0.1))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    engine.train_updates(participants(engine), round_seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_update_digest_and_fields_match_the_training(make_engine):
    engine = make_engine()
    steps = {"bank-0": 1, "clinic-1": 4}
    updates = engine.train_updates(
        [Participant("bank-0", 1, data_share=0.25), Participant("clinic-1", 4)], round_seed=0
    )
    for update in updates:
        assert update.digest == adapter_digest(update.adapter)
        assert update.local_steps == steps[update.org]
        assert math.isfinite(update.train_loss) and update.train_loss > 0
    assert [u.num_examples for u in updates] == [math.ceil(0.25 * 24), 24]
    update = updates[0]
    update.adapter[next(iter(update.adapter))].add_(1.0)  # no storage shared with the engine
    assert engine.global_digest == adapter_digest(engine.global_adapter)


# ----------------------------------------------------------------------------- rounds


def test_a_round_commits_and_improves_the_organizations_domains(make_engine):
    engine = make_engine()
    start = engine.global_digest
    first = engine.run_round(participants(engine, steps=6))
    second = engine.run_round(participants(engine, steps=6))
    assert isinstance(first, RoundResult) and (first.round, second.round) == (0, 1)
    assert second.global_digest == engine.global_digest != first.global_digest != start
    assert second.before == first.after
    for domain in ("bank", "clinic", "insurance"):
        assert second.after.domains[domain].nll < first.before.domains[domain].nll - 0.05
    assert {"train", "aggregate", "evaluate_before", "evaluate_after", "round"} <= set(
        first.timings
    )


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_coalition_value_equals_the_committed_model(make_engine, aggregator):
    """evaluate_coalition(S) is exactly what evaluate_global() gives after commit(S)."""
    engine = make_engine(aggregator)
    assert engine.evaluate_coalition([]) == engine.evaluate_global()
    updates = engine.train_updates(participants(engine), round_seed=1)
    predicted = engine.evaluate_coalition(updates[:2])
    engine.commit(updates[:2])
    assert engine.evaluate_global() == predicted
    assert engine.evaluate_global().score != engine.evaluate_coalition(updates[2:]).score


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_coalition_evaluation_leaves_the_model_bit_identical(make_engine, aggregator):
    engine = make_engine(aggregator)
    engine.commit(engine.train_updates(participants(engine), round_seed=0))  # flora: merged base
    state, digest = model_state(engine), engine.global_digest
    updates = engine.train_updates(participants(engine), round_seed=1)
    assert_same_state(engine, state)
    for subset in ([], updates[:1], updates[1:], updates):
        engine.evaluate_coalition(subset)
    assert_same_state(engine, state)
    assert engine.global_digest == digest


def test_the_global_result_is_kept_until_the_global_state_changes(make_engine, monkeypatch):
    engine = make_engine()
    calls = []
    evaluate = engine.benchmark.evaluate
    monkeypatch.setattr(
        engine.benchmark, "evaluate", lambda m, **kw: calls.append(1) or evaluate(m, **kw)
    )
    first = engine.evaluate_global()
    assert engine.evaluate_global() is first and len(calls) == 1
    updates = engine.train_updates(participants(engine), round_seed=0)
    engine.evaluate_coalition(updates[:2])
    engine.evaluate_coalition(list(reversed(updates[:2])))  # the round keeps coalition values
    assert len(calls) == 3
    engine.commit(updates)  # a new global: the old result no longer applies
    assert engine.evaluate_global() is not first and len(calls) == 4


# ----------------------------------------------------------------------------- aggregators


def weighted_dense_sum(updates: list[ClientUpdate], scale: float) -> dict[str, torch.Tensor]:
    total_examples = sum(u.num_examples for u in updates)
    total: dict[str, torch.Tensor] = {}
    for update in updates:
        weight = update.num_examples / total_examples
        for module, delta in dense_deltas(update.adapter, scale).items():
            total[module] = total.get(module, 0) + weight * delta.double()
    return total


@pytest.mark.parametrize("aggregator", ["ffa", "flora"])
def test_exact_aggregators_commit_the_weighted_sum_of_client_changes(make_engine, aggregator):
    engine = make_engine(aggregator)
    scale = engine.config.lora.scale
    updates = engine.train_updates(
        [Participant("bank-0", 4, 0.5), Participant("clinic-1", 2), Participant("insurance-2", 3)],
        round_seed=0,
    )
    ideal = weighted_dense_sum(updates, scale)

    def base_weight(module: str) -> torch.Tensor:
        return engine.model.get_submodule(module).base_layer.weight.detach().double()

    before = {m: base_weight(m).clone() for m in ideal}
    engine.commit(updates)
    if aggregator == "flora":  # merged into the base; the fresh adapter starts at zero change
        committed = {m: base_weight(m) - before[m] for m in ideal}
        assert all(not d.any() for d in dense_deltas(engine.global_adapter, scale).values())
    else:
        committed = {m: d.double() for m, d in dense_deltas(engine.global_adapter, scale).items()}
    assert max(float((committed[m] - ideal[m]).abs().max()) for m in ideal) < 1e-5
    assert max(float(d.abs().max()) for d in ideal.values()) > 1e-3


def test_ffa_trains_only_b_and_flora_keeps_the_rank(make_engine):
    ffa = make_engine("ffa")
    start = ffa.global_adapter
    for update in ffa.train_updates(participants(ffa), round_seed=0):
        for key, tensor in update.adapter.items():
            assert torch.equal(tensor, start[key]) == key.endswith(LORA_A_SUFFIX)
    flora = make_engine("flora")
    shapes = {k: v.shape for k, v in flora.global_adapter.items()}
    flora.commit(flora.train_updates(participants(flora), round_seed=0))
    assert {k: v.shape for k, v in flora.global_adapter.items()} == shapes
    assert all(not v.any() for k, v in flora.global_adapter.items() if k.endswith(LORA_B_SUFFIX))


# ----------------------------------------------------------------------------- bad input


def corrupted(update: ClientUpdate, change) -> ClientUpdate:
    adapter = clone_adapter(update.adapter)
    change(adapter, min(adapter))
    return ClientUpdate.create(
        update.org, adapter, num_examples=update.num_examples, local_steps=update.local_steps
    )


BAD_UPDATES = {
    "nan": (
        lambda a, k: a[k].view(-1)[0].fill_(float("nan")),
        InvalidUpdateError,
        "NaN/inf",
    ),
    "inf": (lambda a, k: a[k].view(-1)[-1].fill_(float("inf")), InvalidUpdateError, "NaN/inf"),
    "shape": (lambda a, k: a.__setitem__(k, torch.zeros(2, 3)), InvalidUpdateError, "shape"),
    "missing key": (lambda a, k: a.pop(k), InvalidUpdateError, "missing"),
}


@pytest.mark.parametrize("problem", sorted(BAD_UPDATES))
def test_a_bad_update_rejects_the_whole_commit(make_engine, problem):
    change, error, message = BAD_UPDATES[problem]
    engine = make_engine()
    updates = engine.train_updates(participants(engine), round_seed=0)
    state, digest = model_state(engine), engine.global_digest
    bad = [*updates[:2], corrupted(updates[2], change)]
    with pytest.raises(error, match=message) as info:
        engine.commit(bad)
    assert repr(updates[2].org) in str(info.value)
    with pytest.raises(error):
        engine.evaluate_coalition(bad)
    assert engine.global_digest == digest
    assert_same_state(engine, state)


def test_tampered_foreign_and_duplicate_updates_are_rejected(make_engine):
    engine = make_engine("ffa")
    updates = engine.train_updates(participants(engine), round_seed=0)
    digest = engine.global_digest
    tampered = copy.copy(updates[0])
    tampered.adapter = clone_adapter(tampered.adapter)
    tampered.adapter[min(k for k in tampered.adapter if k.endswith(LORA_B_SUFFIX))] += 1.0
    with pytest.raises(InvalidUpdateError, match="digest"):
        engine.commit([tampered])
    moved_a = corrupted(updates[0], lambda a, k: a[k].add_(0.5))  # sorted first key is an A
    with pytest.raises(InvalidUpdateError, match="frozen"):
        engine.commit([moved_a])
    foreign = copy.copy(updates[0])
    foreign.org = "mallory"
    with pytest.raises(UnknownOrganizationError, match="mallory"):
        engine.commit([foreign])
    with pytest.raises(InvalidUpdateError, match="more than one"):
        engine.commit([updates[0], updates[0]])
    with pytest.raises(NoParticipantsError):
        engine.commit([])
    assert engine.global_digest == digest


def test_bad_participants_are_rejected_before_any_training(make_engine):
    engine = make_engine()
    digest = engine.global_digest
    with pytest.raises(NoParticipantsError):
        engine.run_round([])
    with pytest.raises(UnknownOrganizationError, match="'mallory'") as info:
        engine.run_round([Participant("bank-0", 2), Participant("mallory", 2)])
    assert "bank-0" in str(info.value)  # lists the known organizations
    with pytest.raises(ConfigError, match="twice"):
        engine.train_updates([Participant("bank-0", 2)] * 2, round_seed=0)
    for steps in (0, -3, 1.5):
        with pytest.raises(ConfigError, match="local_steps"):
            Participant("bank-0", steps)
    for share in (0.0, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="data_share"):
            Participant("bank-0", 2, data_share=share)
    sneaky = Participant("bank-0", 2)
    object.__setattr__(sneaky, "local_steps", 0)  # past the constructor's check
    with pytest.raises(ConfigError, match="local_steps"):
        engine.run_round([sneaky])
    assert engine.global_digest == digest and engine.round == 0


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"training": {"aggregator": "fedprox"}}, "training.aggregator"),
        ({"training": {"learning_rate": 0.0}}, "training.learning_rate"),
        ({"training": {"batch_size": 0}}, "training.batch_size"),
        ({"training": {"max_grad_norm": -1.0}}, "training.max_grad_norm"),
        ({"training": {"cpu_threads": -1}}, "training.cpu_threads"),
        ({"lora": {"r": 0}}, "lora.r"),
        ({"device": "mps"}, "device"),
        ({"lr": 1e-2}, "lr"),
    ],
)
def test_engine_config_names_the_bad_field(overrides, field):
    with pytest.raises(ConfigError) as info:
        EngineConfig(**overrides)
    assert info.value.field == field


def test_lora_targets_must_exist(make_engine):
    with pytest.raises(ConfigError, match="target_modules"):
        make_engine(lora=LoraSettings(target_modules=("no_such_proj",)))


# ----------------------------------------------------------------------------- global state


@pytest.mark.parametrize("aggregator", ["fedavg", "flora"])
def test_reset_restores_the_start_and_the_digest_is_the_state_bytes_hash(make_engine, aggregator):
    engine = make_engine(aggregator)
    start_digest, start_state = engine.global_digest, model_state(engine)
    engine.run_round(participants(engine), evaluate=False)
    digest = engine.global_digest
    assert digest != start_digest
    assert digest == hashlib.sha256(engine.global_state_bytes()).hexdigest()
    engine.reset()
    assert engine.global_digest == start_digest and engine.round == 0
    assert_same_state(engine, start_state)


def test_demo_prints_every_domain_and_the_global_score(test_cache_dir, test_base, capsys):
    from fedenv.data import DOMAINS
    from fedenv.engine.demo import main

    args = "--preset test --orgs 2 --rounds 2 --local-steps 2 --examples 16"
    assert (
        main([*args.split(), "--benchmark-dialogues", "1", "--cache-dir", str(test_cache_dir)]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("round"))
    assert all(d in header for d in DOMAINS) and "global" in header
    rows = [line.split() for line in lines[lines.index(header) + 1 :]]
    assert [r[0] for r in rows[:3]] == ["base", "1", "2"]
    for row in rows[:3]:
        scores = [float(cell) for cell in row[1 : len(DOMAINS) + 3]]  # domains, global, private
        assert all(0.0 <= score <= 10.0 for score in scores)


def test_a_bfloat16_base_trains_float32_adapters(make_engine):
    """The reduced-precision path a GPU uses: bf16 base weights, float32 LoRA and digests."""
    engine = make_engine("flora", dtype="bfloat16", device="cpu")
    assert next(engine.model.parameters()).dtype == torch.bfloat16
    assert all(t.dtype == torch.float32 for t in engine.global_adapter.values())
    updates = engine.train_updates(participants(engine, steps=2), round_seed=0)
    assert all(math.isfinite(u.train_loss) for u in updates)
    predicted = engine.evaluate_coalition(updates)
    state = model_state(engine)
    engine.evaluate_coalition(updates[:1])
    assert_same_state(engine, state)
    engine.commit(updates)
    assert engine.evaluate_global() == predicted
