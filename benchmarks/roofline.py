"""Roofline: how close local training and coalition evaluation come to this machine's GEMM peak.

    python benchmarks/roofline.py [--scenario default] [--threads N] [--local-steps 4]
                                  [--repeats 5] [--compile]

1. **Peak at the model's own shapes.** Every matrix product one local step runs (each projection's
   forward ``[T, in] x [in, out]`` and input gradient ``[T, out] x [out, in]``, ``lm_head`` both
   ways; ``T`` = batch size x max_len tokens) and one benchmark forward (``T`` = its packed
   positions) is timed alone with ``torch.nn.functional.linear`` / ``torch.mm`` on the threads the
   engine uses (best of several runs). The *peak* of a workload is its FLOP-weighted rate over
   those shapes: the speed at which it would run if it did nothing but its matrix products. It is
   measured before and after the timed work, and the larger of the two is used.
2. **FLOPs from the model config** (:mod:`fedenv.engine.flops`): model FLOPs count real tokens
   and the pairs they attend to (padding is waste); executed FLOPs count what the kernels run on
   padded batches.
3. **Achieved.** Local training: ``engine.train_updates`` of one organization for
   ``--local-steps`` steps (the whole client: adapter copy in, steps, clone out, digest), divided
   into the steps' FLOPs. Coalition evaluation: ``engine.evaluate_coalition`` of the global model
   (the merge into the base weights, the benchmark forward, the restore). Best of
   ``--repeats``, like the peak, so that a busy neighbour biases neither side. ``--compile`` adds
   the same rows with ``training.compile`` on (compiled in an untimed warm-up call).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fedenv
from fedenv.engine.federation import Participant
from fedenv.engine.flops import (
    DecoderShape,
    evaluation_flops,
    local_step_flops,
)
from fedenv.scenario.engine import scenario_engine


def best_seconds(function: Callable[[], object], repeats: int, inner: int) -> float:
    """Fastest mean time of ``inner`` calls, over ``repeats`` tries, after a warm-up."""
    for _ in range(2):
        function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            function()
        best = min(best, (time.perf_counter() - start) / inner)
    return best


def gemm_rates(
    shape: DecoderShape, tokens: int, *, backward: bool
) -> list[tuple[str, float, float]]:
    """``(label, FLOPs, GFLOP/s)`` of each matrix product of one pass over ``tokens`` positions."""
    products = [(name, fan_in, fan_out) for name, (fan_in, fan_out) in shape.projections().items()]
    products.append(("lm_head", shape.hidden, shape.vocab))
    rates = []
    for name, fan_in, fan_out in products:
        weight = torch.randn(fan_out, fan_in)
        x = torch.randn(tokens, fan_in)
        flops = 2.0 * tokens * fan_in * fan_out
        seconds = best_seconds(
            lambda x=x, weight=weight: torch.nn.functional.linear(x, weight), 5, 20
        )
        count = shape.layers if name != "lm_head" else 1
        rates.append(
            (
                f"{name} [{tokens}x{fan_in}]x[{fan_in}x{fan_out}]",
                count * flops,
                flops / seconds / 1e9,
            )
        )
        if backward:
            grad = torch.randn(tokens, fan_out)
            seconds = best_seconds(lambda grad=grad, weight=weight: grad.mm(weight), 5, 20)
            rates.append(
                (
                    f"  d{name} [{tokens}x{fan_out}]x[{fan_out}x{fan_in}]",
                    count * flops,
                    flops / seconds / 1e9,
                )
            )
    return rates


def weighted_peak(rates: list[tuple[str, float, float]]) -> float:
    """FLOP-weighted rate: total FLOPs over the time each product takes at its own rate."""
    return sum(f for _, f, _ in rates) / sum(f / r for _, f, r in rates)


def best_call(function: Callable[[], object], repeats: int) -> float:
    """Fastest of ``repeats`` calls after a warm-up call (which also compiles, if compiling)."""
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default="default", help="scenario name or TOML file")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: the engine's)")
    parser.add_argument("--local-steps", type=int, default=4, help="steps of the timed client")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time training.compile")
    args = parser.parse_args(argv)

    overrides = {"training.cpu_threads": args.threads} if args.threads else {}
    scenario = fedenv.load_scenario(args.scenario, **overrides)
    engines = {"eager": scenario_engine(scenario)}
    if args.compile:
        engines["compiled"] = scenario_engine(scenario.with_overrides(**{"training.compile": True}))
    engine = engines["eager"]
    threads = engine.num_threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    shape = DecoderShape.of(engine.model.get_base_model().config)
    ranks = dict.fromkeys(scenario.lora.target_modules, scenario.lora.r)
    batch, max_len = scenario.training.batch_size, scenario.training.max_len
    workload = engine.benchmark.workload
    eval_positions = sum(w.rows * w.width for w in workload)
    print(
        f"roofline: scenario {scenario.name!r}, preset {scenario.model.preset!r} "
        f"({shape.parameters_in_projections:,} weights in projections), LoRA r={scenario.lora.r} "
        f"on {'/'.join(scenario.lora.target_modules)}; {threads} torch thread(s); "
        f"torch {torch.__version__}"
    )

    org = max(engine.orgs, key=lambda o: len(engine.dataset(o)))
    participant = Participant(org, args.local_steps)
    lengths = engine.batch_lengths(participant, round_seed=0)
    model_flops = sum(local_step_flops(shape, rows, lora_ranks=ranks).total for rows in lengths)
    executed = sum(
        local_step_flops(shape, rows, lora_ranks=ranks, width=max(rows)).total for rows in lengths
    )
    eval_model = evaluation_flops(shape, engine.benchmark).total
    eval_executed = evaluation_flops(shape, engine.benchmark, executed=True).total

    # The peak is measured before and after the timed work; the larger is the denominator.
    before = (
        gemm_rates(shape, batch * max_len, backward=True),
        gemm_rates(shape, eval_positions, backward=False),
    )
    timings = {}
    for name, each in engines.items():
        train_s = best_call(
            lambda e=each: e.train_updates([participant], round_seed=0), args.repeats
        )
        eval_s = best_call(lambda e=each: e.evaluate_coalition([]), args.repeats)
        timings[name] = (train_s, eval_s)
    train_rates = gemm_rates(shape, batch * max_len, backward=True)
    eval_rates = gemm_rates(shape, eval_positions, backward=False)
    train_peak = max(weighted_peak(before[0]), weighted_peak(train_rates))
    eval_peak = max(weighted_peak(before[1]), weighted_peak(eval_rates))
    print("\n## GEMM rates at the model's shapes (best of 5 x 20 calls, last measurement)")
    for label, _, rate in train_rates + eval_rates:
        print(f"{label:<44} {rate:7.1f} GFLOP/s")

    print(
        f"\n## achieved (best of {args.repeats}; peak = FLOP-weighted GEMM rate of the pass, "
        "the larger of two measurements)"
    )
    print(
        "| workload | FLOPs (model / executed) | time | GFLOP/s (model) | peak "
        "| fraction of peak (model / executed) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    rows_done = sum(len(r) for r in lengths)
    passes = f"{len(workload)} x {workload[0].rows}x{workload[0].width}"
    for name, (train_s, eval_s) in timings.items():
        for label, flops, run, seconds, peak in (
            (
                f"local training, {args.local_steps} steps, {rows_done} rows ({name})",
                model_flops,
                executed,
                train_s,
                train_peak,
            ),
            (
                f"coalition evaluation, {passes} ({name})",
                eval_model,
                eval_executed,
                eval_s,
                eval_peak,
            ),
        ):
            rate = flops / seconds / 1e9
            print(
                f"| {label} | {flops / 1e9:.2f} / {run / 1e9:.2f} G | {1000 * seconds:.1f} ms "
                f"| {rate:.1f} | {peak:.1f} GFLOP/s "
                f"| {100 * rate / peak:.0f}% / {100 * run / seconds / 1e9 / peak:.0f}% |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
