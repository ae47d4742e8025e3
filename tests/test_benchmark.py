from __future__ import annotations

import math

import pytest
import torch

from fedenv.data import (
    PRIVATE_DOMAINS,
    PUBLIC_DOMAINS,
    Dialogue,
    Message,
    benchmark_dialogues,
    save_jsonl,
)
from fedenv.data.benchmark import Benchmark, domain_score
from fedenv.data.encoding import encode_dialogue, render
from fedenv.data.pretrain import torch_threads
from fedenv.errors import ConfigError


def naive_nll(model, tokenizer, dialogues) -> float:
    """Mean assistant-token NLL with one plain causal forward pass per dialogue."""
    total, count = 0.0, 0
    for dialogue in dialogues:
        ids, labels = encode_dialogue(tokenizer, dialogue, None)
        with torch.no_grad():
            logp = model(torch.tensor([ids])).logits[0].log_softmax(-1)
        for t in range(1, len(ids)):
            if labels[t] != -100:
                total -= logp[t - 1, ids[t]].item()
                count += 1
    return total / count


def naive_choice(model, tokenizer, dialogue, probe) -> list[float]:
    """Log-likelihood of each candidate (true first) given the dialogue up to the fact, each
    scored in its own forward pass on ``context + candidate`` text."""
    context = (
        render(tokenizer, dialogue.messages[: probe.turn], generation_prompt=True) + probe.prefix
    )
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    scores = []
    for candidate in (probe.answer, *probe.distractors):
        cont = tokenizer(context + candidate, add_special_tokens=False)["input_ids"][
            len(context_ids) :
        ]
        ids = torch.tensor([context_ids + cont])
        with torch.no_grad():
            logp = model(ids).logits[0].log_softmax(-1)
        scores.append(sum(logp[len(context_ids) - 1 + j, tok].item() for j, tok in enumerate(cont)))
    return scores


def test_packed_evaluation_matches_separate_forward_passes(test_base):
    model, tokenizer = test_base
    by_domain = {
        "bank": benchmark_dialogues("bank", 3, 7),
        "retail": benchmark_dialogues("retail", 3, 7),
    }
    bench = Benchmark(tokenizer, by_domain, device="cpu")
    result = bench.evaluate(model)
    packed_scores = bench.probe_loglikelihoods(model)
    k = 0
    with torch_threads(1):  # many tiny forward passes: one thread is fastest
        naive = {d: naive_nll(model, tokenizer, dialogues) for d, dialogues in by_domain.items()}
        choices = [
            naive_choice(model, tokenizer, d, p)
            for ds in by_domain.values()
            for d in ds
            for p in d.facts
        ]
    for domain, dialogues in by_domain.items():
        assert result.domains[domain].nll == pytest.approx(naive[domain], abs=1e-4)
        correct = []
        for dialogue in dialogues:
            for probe in dialogue.facts:
                expected = choices[k]
                assert packed_scores[k] == pytest.approx(expected, abs=1e-3)
                correct.append(expected[0] > max(expected[1:]))
                k += 1
        assert result.domains[domain].fact_accuracy == pytest.approx(sum(correct) / len(correct))
        assert result.domains[domain].num_probes == len(correct)
    assert k == len(packed_scores) == bench.num_probes


def test_results_do_not_depend_on_batch_size_and_repeat_exactly(test_base):
    model, tokenizer = test_base
    one = Benchmark.generated(tokenizer, ["clinic", "hotel"], 3, seed=1, batch_size=1, device="cpu")
    all_ = Benchmark.generated(
        tokenizer, ["clinic", "hotel"], 3, seed=1, batch_size=64, device="cpu"
    )
    a, b = one.evaluate(model), all_.evaluate(model)
    for domain in ("clinic", "hotel"):
        assert a.domains[domain].nll == pytest.approx(b.domains[domain].nll, abs=1e-5)
        assert a.domains[domain].fact_accuracy == b.domains[domain].fact_accuracy
    assert all_.evaluate(model) == b


def test_evaluate_restores_the_training_mode_and_keeps_no_graph(test_base):
    model, tokenizer = test_base
    bench = Benchmark.generated(tokenizer, ["bank"], 2, seed=0, device="cpu")
    model.train()
    try:
        bench.evaluate(model)
        assert model.training
    finally:
        model.eval()
    assert all(p.grad is None for p in model.parameters())


def test_public_domains_score_clearly_higher_than_private_ones_on_the_base(test_base):
    model, tokenizer = test_base
    result = Benchmark.generated(tokenizer, PUBLIC_DOMAINS + PRIVATE_DOMAINS, 4, seed=0).evaluate(
        model
    )
    public = [result.domains[d] for d in PUBLIC_DOMAINS]
    private = [result.domains[d] for d in PRIVATE_DOMAINS]
    assert min(r.score for r in public) > max(r.score for r in private) + 2.0
    assert sum(r.nll for r in public) / 4 < sum(r.nll for r in private) / 4 - 1.0
    assert result.score == pytest.approx(sum(r.score for r in result.domains.values()) / 8)
    assert all(0.0 <= r.score <= 10.0 for r in result.domains.values())


def test_domain_score_formula():
    assert domain_score(0.0, 1.0, chance=0.25) == pytest.approx(10.0)
    assert domain_score(math.log(2), 0.25, chance=0.25) == pytest.approx(
        10 * 0.5 * 0.5
    )  # chance: no credit
    assert domain_score(math.log(2), 0.0, chance=0.25) == pytest.approx(
        2.5
    )  # below chance clips at 0
    assert domain_score(1.0, 0.625, chance=0.25) == pytest.approx(
        10 * (0.5 * 0.5 + 0.5 * math.exp(-1))
    )
    assert domain_score(1.0, math.nan, chance=0.0) == pytest.approx(10 * math.exp(-1))  # no probes


def test_resolution_is_one_fact_probe_answered_differently(test_base, tmp_path):
    _, tokenizer = test_base
    by_domain = {
        "bank": benchmark_dialogues("bank", 3, 7),
        "retail": benchmark_dialogues("retail", 5, 7),
    }
    bench = Benchmark(tokenizer, by_domain, device="cpu")
    steps = []
    for dialogues in by_domain.values():
        probes = [probe for dialogue in dialogues for probe in dialogue.facts]
        chance = sum(1 / (1 + len(p.distractors)) for p in probes) / len(probes)
        one_more = domain_score(0.5, chance + 1 / len(probes), chance)
        steps.append((one_more - domain_score(0.5, chance, chance)) / len(by_domain))
    assert bench.resolution == pytest.approx(min(steps))
    assert min(steps) < max(steps)  # more probes (retail) resolve finer
    path = tmp_path / "plain.jsonl"
    save_jsonl([Dialogue((Message("user", "Hi."), Message("assistant", "Hello.")))], path)
    assert Benchmark.from_jsonl(tokenizer, {"plain": path}, device="cpu").resolution == 0.0


def test_jsonl_benchmark_scores_nll_only(test_base, tmp_path):
    model, tokenizer = test_base
    path = tmp_path / "support.jsonl"
    save_jsonl(
        [
            Dialogue(
                (
                    Message("system", "Be brief."),
                    Message("user", "Hi."),
                    Message("assistant", "Hello."),
                )
            )
        ],
        path,
    )
    result = Benchmark.from_jsonl(tokenizer, {"support": path}, device="cpu").evaluate(model)
    domain = result.domains["support"]
    assert math.isnan(domain.fact_accuracy) and domain.num_probes == 0
    assert domain.num_tokens == len(
        tokenizer("Hello.<|end|>", add_special_tokens=False)["input_ids"]
    )
    assert domain.score == pytest.approx(10 * math.exp(-domain.nll))


def test_probes_cut_off_by_max_len_are_dropped_and_counted(test_base):
    _, tokenizer = test_base
    full = Benchmark.generated(tokenizer, ["bank"], 2, seed=0, device="cpu")
    short = Benchmark.generated(tokenizer, ["bank"], 2, seed=0, device="cpu", max_len=30)
    assert full.dropped_probes == 0 and full.num_probes == 6
    assert short.dropped_probes > 0 and short.num_probes + short.dropped_probes == 6


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"batch_size": 0}, "batch_size"), ({"max_len": 1}, "max_len"), ({"device": "tpu"}, "device")],
)
def test_bad_settings_name_the_field(test_base, kwargs, field):
    _, tokenizer = test_base
    with pytest.raises(ConfigError, match=field):
        Benchmark.generated(tokenizer, ["bank"], 1, seed=0, **kwargs)


def test_empty_domains_are_rejected(test_base):
    _, tokenizer = test_base
    with pytest.raises(ConfigError, match="at least one domain"):
        Benchmark(tokenizer, {})
    with pytest.raises(ConfigError, match="'bank' has no dialogues"):
        Benchmark(tokenizer, {"bank": []})
