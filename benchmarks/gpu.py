"""GPU benchmark: grouped local training, grouped coalition evaluation, the round and the env step,
each against its one-at-a-time version, on CUDA in bf16; one table.

    python benchmarks/gpu.py [--preset small] [--orgs 8] [--local-steps 4] [--repeats 3]

Needs a CUDA device and refuses clearly without one (exit 2). The first run builds the ``small``
preset (about 28M parameters) on the GPU, in about a minute, and caches it; the whole script is
meant to finish within five minutes on a data-center GPU.

Rows (median of ``--repeats`` after a warm-up, ``torch.cuda.synchronize()`` around each):

- **local training**: ``engine.train_updates`` of every organization for ``--local-steps``
  steps, one after another (``grouped=False``) and all in shared passes (``grouped=True``);
  the difference column is the largest absolute difference between the two sets of adapters;
- **coalition evaluation**: the ``n + 1`` leave-one-out coalitions of those updates, merged one
  per pass and grouped; the difference is the largest benchmark-score difference;
- **round**: training, leave-one-out scoring and commit together;
- **env step**: ``env.step`` of a scenario with ``--orgs`` organizations on this preset
  (``training.grouped`` off and on), everyone at level 1, two envs stepped alternately.

The TFLOP/s columns divide the model FLOPs (:mod:`fedenv.engine.flops`) by the time. bf16 rounds
at about 1e-2 relative, so the differences are larger than the 1e-5 that the float32 tests on the
CPU hold the grouped paths to. ``--allow-cpu`` runs the same code on the CPU (to check the script
without a GPU; its figures mean nothing).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fedenv
from fedenv.data import DOMAINS
from fedenv.data.benchmark import Benchmark
from fedenv.data.model import build_info, load_base
from fedenv.engine.demo import org_datasets
from fedenv.engine.federation import FederatedEngine, Participant
from fedenv.engine.flops import DecoderShape, evaluation_flops, local_step_flops
from fedenv.engine.settings import EngineConfig, LoraSettings, TrainingSettings

TARGETS = ("q_proj", "v_proj", "up_proj", "down_proj")


def refuse_without_cuda() -> int:
    print(
        "benchmarks/gpu.py needs a CUDA device: torch.cuda.is_available() is False here "
        f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}). "
        "Run it on a machine with an NVIDIA GPU and a CUDA build of torch (make setup there "
        "installs one); --allow-cpu checks the script on the CPU, with meaningless figures.",
        file=sys.stderr,
    )
    return 2


def median_seconds(function: Callable[[], object], repeats: int, device: torch.device) -> float:
    def synced() -> None:
        function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    synced()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        synced()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def adapter_difference(first, second) -> float:
    return max(
        float((a.adapter[k].float() - b.adapter[k].float()).abs().max())
        for a, b in zip(first, second)
        for k in a.adapter
    )


def env_step_seconds(args, grouped_settings: tuple[str, str], device: str) -> dict[str, float]:
    """Median env.step per ``training.grouped`` setting, two envs stepped alternately."""
    overrides = {
        "preset": args.preset,
        "device": device,
        "dtype": args.dtype,
        "max_rounds": 1000,
        "organizations": [
            {
                "name": f"org{i:02d}",
                "domain": DOMAINS[i % len(DOMAINS)],
                "data_size": 64,
                "budget": 1e9,
            }
            for i in range(args.orgs)
        ],
    }
    envs, times = {}, {}
    with tempfile.TemporaryDirectory() as root:
        for setting in grouped_settings:
            env = fedenv.parallel_env(
                "default",
                run_dir=Path(root) / setting,
                store_adapters=False,
                **overrides,
                **{"training.grouped": setting},
            )
            env.reset(seed=0)
            envs[setting], times[setting] = env, []
        for index in range(args.env_steps + 1):
            for setting, env in envs.items():
                start = time.perf_counter()
                env.step(dict.fromkeys(env.agents, 1))
                if device == "cuda":
                    torch.cuda.synchronize()
                if index:  # the first step warms up
                    times[setting].append(time.perf_counter() - start)
        for env in envs.values():
            env.close()
    return {setting: statistics.median(t) for setting, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small", help="base model preset")
    parser.add_argument("--dtype", default="bfloat16", help="base model dtype")
    parser.add_argument("--orgs", type=int, default=8, help="organizations")
    parser.add_argument("--examples", type=int, default=64, help="dialogues per organization")
    parser.add_argument("--local-steps", type=int, default=4, help="steps per organization")
    parser.add_argument("--dialogues", type=int, default=8, help="benchmark dialogues per domain")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--env-steps", type=int, default=3, help="env steps per setting")
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU (checks only)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() and not args.allow_cpu:
        return refuse_without_cuda()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"

    start = time.perf_counter()
    model, tokenizer = load_base(args.preset, device=str(device), dtype=args.dtype, progress=False)
    build_s = time.perf_counter() - start
    info = build_info(args.preset) or {}
    datasets = org_datasets(args.orgs, args.examples, seed=0)
    benchmark = Benchmark.generated(tokenizer, DOMAINS, args.dialogues, 0, device=device)
    lora = LoraSettings(r=8, alpha=16, target_modules=TARGETS)
    training = TrainingSettings(learning_rate=1e-3, batch_size=8, max_len=128, grouped="off")
    config = EngineConfig(lora=lora, training=training, device=str(device), dtype=args.dtype)
    engine = FederatedEngine(model, tokenizer, datasets, benchmark, config)
    shape = DecoderShape.of(engine.model.get_base_model().config)
    print(
        f"gpu benchmark: {name}, torch {torch.__version__}, preset {args.preset!r} "
        f"({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, built on "
        f"{info.get('device', '?')} in {info.get('build_seconds', float('nan')):.0f} s; loaded in "
        f"{build_s:.1f} s), {args.dtype}, {args.orgs} organizations x {args.local_steps} local "
        f"steps, LoRA r=8 on {'/'.join(TARGETS)}, median of {args.repeats}"
    )

    participants = [Participant(org, args.local_steps) for org in engine.orgs]
    ranks = dict.fromkeys(TARGETS, 8)
    train_flops = sum(
        local_step_flops(shape, rows, lora_ranks=ranks).total
        for p in participants
        for rows in engine.batch_lengths(p, round_seed=0)
    )
    rows = []

    def train(grouped: bool):
        return engine.train_updates(participants, round_seed=0, grouped=grouped)

    one, shared = train(False), train(True)
    times = [median_seconds(lambda g=g: train(g), args.repeats, device) for g in (False, True)]
    rows.append(("local training", times, train_flops, adapter_difference(one, shared)))

    coalitions = [one] + [[u for u in one if u is not left_out] for left_out in one]
    eval_flops = len(coalitions) * evaluation_flops(shape, benchmark).total

    def evaluate(grouped: bool):
        return engine.evaluate_coalitions(coalitions, grouped=grouped)

    merged, grouped_results = evaluate(False), evaluate(True)
    times = [median_seconds(lambda g=g: evaluate(g), args.repeats, device) for g in (False, True)]
    score_difference = max(abs(a.score - b.score) for a, b in zip(merged, grouped_results))
    rows.append((f"coalition evaluation ({len(coalitions)})", times, eval_flops, score_difference))

    def round_(grouped: bool) -> None:
        engine.reset()  # every timed round starts from the initial global state
        updates = engine.train_updates(participants, round_seed=1, grouped=grouped)
        loo = [updates] + [[u for u in updates if u is not left_out] for left_out in updates]
        engine.evaluate_coalitions(loo, grouped=grouped)
        engine.commit(updates)

    times = [median_seconds(lambda g=g: round_(g), args.repeats, device) for g in (False, True)]
    rows.append(("round (train, LOO, commit)", times, train_flops + eval_flops, None))
    engine.reset()

    steps = env_step_seconds(args, ("off", "on"), device.type)
    rows.append(("env step (level 1)", [steps["off"], steps["on"]], None, None))

    print()
    print(
        "| what | one at a time | grouped | speed-up | TFLOP/s (one / grouped) | max difference |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, (sequential, grouped), flops, difference in rows:
        rate = f"{flops / sequential / 1e12:.2f} / {flops / grouped / 1e12:.2f}" if flops else "-"
        diff = f"{difference:.2e}" if difference is not None else "-"
        print(
            f"| {label} | {1000 * sequential:.1f} ms | {1000 * grouped:.1f} ms "
            f"| {sequential / grouped:.2f}x | {rate} | {diff} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
