"""Demo: a few organizations fine-tune the base model together; scores per domain, per round.

    python -m fedenv.engine --orgs 4 --rounds 5 [--aggregator ffa] [--local-steps 8]

Organization ``i`` holds private dialogues of ``PRIVATE_DOMAINS[i % 4]``: domains the base model
never saw in pretraining, so their scores start low and climb, while the public domains (which
the base knows) should hold steady. Domains marked ``*`` are private.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from fedenv.data import DOMAINS, PRIVATE_DOMAINS, Dialogue, generate_org_dialogues
from fedenv.engine.aggregators import AGGREGATORS
from fedenv.engine.federation import FederatedEngine, Participant
from fedenv.engine.settings import EngineConfig, LoraSettings, TrainingSettings
from fedenv.errors import FedenvError


def org_datasets(num_orgs: int, examples_per_org: int, seed: int) -> dict[str, list[Dialogue]]:
    """``{"<domain>-<i>": dialogues}``: organization ``i`` gets ``PRIVATE_DOMAINS[i % 4]``."""
    datasets = {}
    for index in range(num_orgs):
        domain = PRIVATE_DOMAINS[index % len(PRIVATE_DOMAINS)]
        org = f"{domain}-{index}"
        datasets[org] = generate_org_dialogues(domain, examples_per_org, seed, org=org)
    return datasets


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fedenv.engine", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--orgs", type=int, default=4, help="number of organizations")
    parser.add_argument("--rounds", type=int, default=5, help="federated rounds")
    parser.add_argument("--aggregator", default="fedavg", choices=sorted(AGGREGATORS))
    parser.add_argument(
        "--preset", default="tiny", help="model preset, or a Hugging Face model name/path"
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16")
    parser.add_argument(
        "--seed", type=int, default=0, help="drives data, model, adapter and training"
    )
    parser.add_argument(
        "--local-steps", type=int, default=8, help="AdamW steps per organization and round"
    )
    parser.add_argument(
        "--examples", type=int, default=128, help="training dialogues per organization"
    )
    parser.add_argument("--lr", type=float, default=1e-2, help="local AdamW learning rate")
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank")
    parser.add_argument(
        "--benchmark-dialogues", type=int, default=16, help="held-out dialogues per domain"
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="where presets are built and cached (default: $FEDENV_CACHE)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (default 0: 1 for small CPU models)",
    )
    args = parser.parse_args(argv)
    for name in ("orgs", "rounds", "local_steps", "examples", "rank", "benchmark_dialogues"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except FedenvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def run(args: argparse.Namespace) -> None:
    """Build the base, the organizations and the engine; print one row per round."""
    from fedenv.data.benchmark import Benchmark
    from fedenv.data.model import load_base

    model, tokenizer = load_base(
        args.preset, device=args.device, dtype=args.dtype, seed=args.seed, cache_dir=args.cache_dir
    )
    device = next(model.parameters()).device
    benchmark = Benchmark.generated(
        tokenizer, DOMAINS, args.benchmark_dialogues, args.seed, device=device
    )
    config = EngineConfig(
        lora=LoraSettings(r=args.rank, alpha=2.0 * args.rank),
        training=TrainingSettings(
            aggregator=args.aggregator, learning_rate=args.lr, cpu_threads=args.threads
        ),
        seed=args.seed,
    )
    engine = FederatedEngine(
        model, tokenizer, org_datasets(args.orgs, args.examples, args.seed), benchmark, config
    )
    print(
        f"{len(engine.orgs)} organizations ({', '.join(engine.orgs)}), preset {args.preset!r} on "
        f"{device} {next(model.parameters()).dtype}, aggregator {args.aggregator}, "
        f"{args.local_steps} local steps; * = private domain (unknown to the base model)"
    )
    names = [f"{d}*" if d in PRIVATE_DOMAINS else d for d in DOMAINS]
    widths = [max(7, len(name)) for name in names]
    print(
        "round  "
        + "  ".join(n.rjust(w) for n, w in zip(names, widths))
        + "   global  private  train_loss  train_s"
    )

    def row(label: str, result, loss: str, seconds: str) -> str:
        scores = [result.domains[d].score for d in DOMAINS]
        private = sum(result.domains[d].score for d in PRIVATE_DOMAINS) / len(PRIVATE_DOMAINS)
        cells = "  ".join(f"{s:{w}.2f}" for s, w in zip(scores, widths))
        return (
            f"{label:>5}  {cells}   {result.score:6.2f}  {private:7.2f}  {loss:>10}  {seconds:>7}"
        )

    print(row("base", engine.evaluate_global(), "-", "-"))
    participants = [Participant(org, args.local_steps) for org in engine.orgs]
    start = time.perf_counter()
    for _ in range(args.rounds):
        result = engine.run_round(participants)
        loss = sum(u.train_loss for u in result.updates) / len(result.updates)
        print(
            row(
                str(result.round + 1), result.after, f"{loss:.3f}", f"{result.timings['train']:.2f}"
            )
        )
    print(
        f"{args.rounds} rounds in {time.perf_counter() - start:.1f} s; "
        f"global adapter {engine.global_digest[:16]}... (sha256 of its canonical bytes)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
