"""Timings of the embedded base model and the benchmark.

    python benchmarks/model_data.py [--preset tiny] [--dialogues 4] [--repeats 30] [--threads N]

Prints: the first build of the preset (tokenizer + pretraining, into a fresh temporary cache),
a cached load, the benchmark's construction and one evaluation of its default size (the private
domains, as in a 4-organization federation, and all domains), and the base model's scores.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from fedenv.data import DOMAINS, PRIVATE_DOMAINS, PUBLIC_DOMAINS
from fedenv.data.benchmark import DEFAULT_DIALOGUES_PER_DOMAIN, Benchmark
from fedenv.data.model import build_info, load_base


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median and minimum wall time of ``fn()`` in seconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--dialogues", type=int, default=DEFAULT_DIALOGUES_PER_DOMAIN)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: torch's default)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        load_base(args.preset, device="cpu", cache_dir=cache, progress=True)
        first = time.perf_counter() - start
        info = build_info(args.preset, 0, cache)
        loads = []
        for _ in range(3):
            start = time.perf_counter()
            model, tokenizer = load_base(args.preset, device="cpu", cache_dir=cache)
            loads.append(time.perf_counter() - start)
    print(
        f"preset {args.preset!r}: {info['parameters']:,} parameters, "
        f"vocabulary {info['vocab_size']}, "
        f"loss {info['first_loss']:.2f} -> {info['final_loss']:.3f} in "
        f"{info['preset_config']['pretrain_steps']} steps"
    )
    print(f"first build + load: {first:.1f} s (build {info['build_seconds']:.1f} s)")
    print(f"cached load: {min(loads) * 1000:.0f} ms (best of 3)")

    for label, domains in (("private domains", PRIVATE_DOMAINS), ("all domains", DOMAINS)):
        start = time.perf_counter()
        bench = Benchmark.generated(tokenizer, domains, args.dialogues, seed=0, device="cpu")
        built = time.perf_counter() - start
        median, best = timed(lambda b=bench: b.evaluate(model), args.repeats)
        print(
            f"benchmark, {label} x {args.dialogues} dialogues ({bench.num_probes} fact probes, "
            f"batches {bench.batch_shapes}): construction {built * 1000:.0f} ms, "
            f"evaluation median {median * 1000:.1f} ms (best {best * 1000:.1f} ms)"
        )

    result = Benchmark.generated(tokenizer, DOMAINS, 8, seed=0, device="cpu").evaluate(model)
    for group, domains in (("public", PUBLIC_DOMAINS), ("private", PRIVATE_DOMAINS)):
        cells = ", ".join(
            f"{d} {result.domains[d].score:.1f} (acc {result.domains[d].fact_accuracy:.2f}, "
            f"nll {result.domains[d].nll:.2f})"
            for d in domains
        )
        print(f"base scores, {group}: {cells}")


if __name__ == "__main__":
    main()
