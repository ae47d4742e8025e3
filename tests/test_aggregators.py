from __future__ import annotations

import pytest
import torch

from fedenv.engine.aggregators import AGGREGATORS, get_aggregator, normalized_weights
from fedenv.engine.lora import LORA_A_SUFFIX, LORA_B_SUFFIX, Adapter, dense_deltas, fresh_adapter
from fedenv.errors import ConfigError, InvalidUpdateError, NoParticipantsError

SCALE = 2.0
# module -> (out, in), like q_proj / v_proj of a small grouped-query attention block
SHAPES = {"layers.0.q_proj": (32, 24), "layers.0.v_proj": (16, 24), "layers.1.q_proj": (32, 24)}
RANK = 4
WEIGHTS = [10, 30, 7]


def template() -> Adapter:
    adapter: Adapter = {}
    for module, (out_features, in_features) in SHAPES.items():
        adapter[module + LORA_A_SUFFIX] = torch.zeros(RANK, in_features)
        adapter[module + LORA_B_SUFFIX] = torch.zeros(out_features, RANK)
    return adapter


def client_adapters(global_adapter: Adapter, *, train_a: bool, seed: int = 0) -> list[Adapter]:
    """What clients could send back: B (and A unless frozen) moved away from the global."""
    generator = torch.Generator().manual_seed(seed)
    clients = []
    for _ in WEIGHTS:
        adapter = {}
        for key, tensor in global_adapter.items():
            trained = key.endswith(LORA_B_SUFFIX) or train_a
            noise = torch.randn(tensor.shape, generator=generator) * 0.3
            adapter[key] = tensor + noise if trained else tensor.clone()
        clients.append(adapter)
    return clients


def weighted_dense_sum(adapters: list[Adapter], weights: list[int]) -> dict[str, torch.Tensor]:
    """The ideal aggregate: sum_i w_i * scale * B_i @ A_i, computed densely in float64."""
    normalized = normalized_weights(weights)
    total: dict[str, torch.Tensor] = {}
    for adapter, weight in zip(adapters, normalized):
        for module, delta in dense_deltas(adapter, SCALE).items():
            total[module] = total.get(module, 0) + weight * delta.double()
    return total


def max_error(adapter: Adapter, ideal: dict[str, torch.Tensor]) -> float:
    deltas = dense_deltas(adapter, SCALE)
    assert deltas.keys() == ideal.keys()
    return max(float((deltas[m].double() - ideal[m]).abs().max()) for m in ideal)


@pytest.mark.parametrize("name", ["ffa", "flora"])
def test_exact_aggregators_equal_the_dense_weighted_sum(name):
    aggregator = get_aggregator(name)
    global_adapter = fresh_adapter(template(), seed=1)
    clients = client_adapters(global_adapter, train_a=aggregator.trains_lora_a)
    aggregate = aggregator.aggregate(global_adapter, clients, WEIGHTS)
    ideal = weighted_dense_sum(clients, WEIGHTS)
    assert max(float(d.abs().max()) for d in ideal.values()) > 0.1  # a non-trivial target
    assert max_error(aggregate, ideal) < 1e-5


def test_fedavg_is_not_exact_in_general():
    fedavg = get_aggregator("fedavg")
    global_adapter = fresh_adapter(template(), seed=1)
    clients = client_adapters(global_adapter, train_a=True)
    aggregate = fedavg.aggregate(global_adapter, clients, WEIGHTS)
    assert max_error(aggregate, weighted_dense_sum(clients, WEIGHTS)) > 1e-2


def test_fedavg_averages_a_and_b_separately_by_data_size():
    global_adapter = fresh_adapter(template(), seed=1)
    clients = client_adapters(global_adapter, train_a=True)
    aggregate = get_aggregator("fedavg").aggregate(global_adapter, clients, WEIGHTS)
    total = sum(WEIGHTS)
    for key in global_adapter:
        expected = sum(w / total * c[key] for w, c in zip(WEIGHTS, clients))
        torch.testing.assert_close(aggregate[key], expected, rtol=1e-6, atol=1e-6)
        assert aggregate[key].shape == global_adapter[key].shape


def test_a_single_client_aggregates_to_itself_for_every_aggregator():
    global_adapter = fresh_adapter(template(), seed=3)
    for name, aggregator in AGGREGATORS.items():
        (client,) = client_adapters(global_adapter, train_a=aggregator.trains_lora_a)[:1]
        aggregate = aggregator.aggregate(global_adapter, [client], [5])
        for key in client:
            assert torch.equal(aggregate[key], client[key]), (name, key)


def test_weights_are_normalized():
    global_adapter = fresh_adapter(template(), seed=1)
    for aggregator in AGGREGATORS.values():
        clients = client_adapters(global_adapter, train_a=aggregator.trains_lora_a)
        small = aggregator.aggregate(global_adapter, clients, [1, 3, 0.7])
        large = aggregator.aggregate(global_adapter, clients, [10, 30, 7])
        for key in small:
            torch.testing.assert_close(small[key], large[key], rtol=1e-6, atol=1e-7)


def test_flora_stacks_along_the_rank_and_ffa_keeps_a():
    global_adapter = fresh_adapter(template(), seed=1)
    flora = get_aggregator("flora").aggregate(
        global_adapter, client_adapters(global_adapter, train_a=True), WEIGHTS
    )
    for module, (out_features, in_features) in SHAPES.items():
        assert flora[module + LORA_A_SUFFIX].shape == (RANK * len(WEIGHTS), in_features)
        assert flora[module + LORA_B_SUFFIX].shape == (out_features, RANK * len(WEIGHTS))
    assert get_aggregator("flora").folds_into_base
    ffa = get_aggregator("ffa").aggregate(
        global_adapter, client_adapters(global_adapter, train_a=False), WEIGHTS
    )
    for key in global_adapter:
        if key.endswith(LORA_A_SUFFIX):
            assert torch.equal(ffa[key], global_adapter[key])


def test_ffa_rejects_an_update_that_changed_a():
    global_adapter = fresh_adapter(template(), seed=1)
    clients = client_adapters(global_adapter, train_a=True)
    with pytest.raises(InvalidUpdateError, match="frozen"):
        get_aggregator("ffa").aggregate(global_adapter, clients, WEIGHTS)


@pytest.mark.parametrize("weights", [[1, 0, 1], [1, -2, 1], [1, float("nan"), 1], [1, 1]])
def test_bad_weights_are_rejected(weights):
    global_adapter = fresh_adapter(template(), seed=1)
    clients = client_adapters(global_adapter, train_a=True)
    with pytest.raises(InvalidUpdateError):
        get_aggregator("fedavg").aggregate(global_adapter, clients, weights)


def test_no_updates_and_unknown_names_are_rejected():
    with pytest.raises(NoParticipantsError, match="zero updates"):
        get_aggregator("fedavg").aggregate(template(), [], [])
    with pytest.raises(ConfigError, match="fedavg"):
        get_aggregator("fedprox")
