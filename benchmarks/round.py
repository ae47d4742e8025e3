"""One federated round: fedenv's engine against the per-client Hugging Face ``Trainer`` pattern.

    python benchmarks/round.py [--preset tiny] [--orgs 4] [--local-steps 2 4 8] [--repeats 5]

Both sides run in this process, on the same base model, the same pre-tokenized data, the same
LoRA settings and starting adapter, the same optimizer (AdamW, constant lr, clip 1.0), batch size
and number of steps, on the same CPU threads:

- engine: ``FederatedEngine.train_updates`` + ``commit`` (peft wrapper built once, adapters copied
  in place, one AdamW reset per client, batches pre-padded, no Trainer);
- Trainer pattern (as federated LLM frameworks do it): per client per round, copy the global
  adapter in with ``set_peft_model_state_dict``, build ``TrainingArguments`` and a fresh
  ``Trainer``, ``train()``, copy the adapter out with ``get_peft_model_state_dict``; then FedAvg.
  The data is tokenized once up front (frameworks built on TRL's ``SFTTrainer`` re-tokenize
  every round, which would only slow this side down further).

Rounds are timed after one warm-up round per setting; the median of ``--repeats`` rounds is
reported, as wall time and as process CPU time (CPU time is what to compare on a busy machine).
Peak resident memory (``ru_maxrss``) is read after the engine's rounds, before the Trainer runs.
"""

from __future__ import annotations

import argparse
import copy
import platform
import resource
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable

import torch


def timed(function: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``repeats`` calls, after one warm-up call."""
    function()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class TrainerPattern:
    """The per-client ``Trainer`` round of federated LLM frameworks (FedAvg of A and B)."""

    def __init__(self, model, tokenizer, engine, datasets, config) -> None:
        from peft import get_peft_model
        from transformers import PrinterCallback, ProgressCallback, Trainer, TrainingArguments
        from transformers.utils import logging

        from fedenv.data.encoding import collate, encode_dialogue

        logging.set_verbosity_error()
        self.Trainer, self.TrainingArguments = Trainer, TrainingArguments
        self.quiet = (PrinterCallback, ProgressCallback)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # transformers deprecations seen by peft
            self.model = get_peft_model(copy.deepcopy(model), config.lora.peft_config())
        self.config = config
        self.examples = {
            org: [
                dict(zip(("input_ids", "labels"), encode_dialogue(tokenizer, d, config.training.max_len)))
                for d in dialogues
            ]
            for org, dialogues in datasets.items()
        }
        pad_id = tokenizer.pad_token_id

        def collator(features):
            return collate([(f["input_ids"], f["labels"]) for f in features], pad_id)

        self.collator = collator
        self.global_adapter = engine.global_adapter  # the same starting adapter as the engine
        self.output_dir = tempfile.mkdtemp(prefix="fedenv-bench-")

    def round(self, local_steps: int) -> None:
        from peft import get_peft_model_state_dict, set_peft_model_state_dict

        updates, sizes = [], []
        for examples in self.examples.values():
            set_peft_model_state_dict(self.model, self.global_adapter)
            args = self.TrainingArguments(
                output_dir=self.output_dir,
                per_device_train_batch_size=self.config.training.batch_size,
                max_steps=local_steps,
                learning_rate=self.config.training.learning_rate,
                lr_scheduler_type="constant",
                weight_decay=self.config.training.weight_decay,
                max_grad_norm=self.config.training.max_grad_norm,
                optim="adamw_torch",
                report_to=[],
                save_strategy="no",
                logging_strategy="no",
                disable_tqdm=True,
                use_cpu=True,
                seed=self.config.seed,
                remove_unused_columns=False,
            )
            trainer = self.Trainer(
                model=self.model, args=args, train_dataset=examples, data_collator=self.collator
            )
            for callback in self.quiet:
                trainer.remove_callback(callback)
            trainer.train()
            state = get_peft_model_state_dict(self.model)
            updates.append({k: v.detach().clone() for k, v in state.items()})
            sizes.append(len(examples))
        total = sum(sizes)
        self.global_adapter = {
            key: sum(u[key] * (n / total) for u, n in zip(updates, sizes)) for key in updates[0]
        }


def main(argv: list[str] | None = None) -> int:
    from fedenv.data import DOMAINS
    from fedenv.data.benchmark import Benchmark
    from fedenv.data.model import load_base
    from fedenv.engine.demo import org_datasets
    from fedenv.engine.federation import FederatedEngine, Participant
    from fedenv.engine.settings import EngineConfig, TrainingSettings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--orgs", type=int, default=4)
    parser.add_argument("--examples", type=int, default=128, help="dialogues per organization")
    parser.add_argument("--local-steps", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, both sides")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    model, tokenizer = load_base(args.preset, device="cpu", dtype="float32", progress=False)
    datasets = org_datasets(args.orgs, args.examples, args.seed)
    benchmark = Benchmark.generated(tokenizer, DOMAINS, 8, args.seed, device="cpu")
    config = EngineConfig(seed=args.seed, training=TrainingSettings(cpu_threads=args.threads))
    engine = FederatedEngine(copy.deepcopy(model), tokenizer, datasets, benchmark, config)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"one round: {args.orgs} organizations, preset {args.preset!r} ({params:,} parameters), "
        f"LoRA r={config.lora.r} on {'/'.join(config.lora.target_modules)}, batch "
        f"{config.training.batch_size}, max_len {config.training.max_len}, {args.examples} dialogues per org; "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} CPU thread(s); median of {args.repeats} rounds"
    )

    ours = {}
    for steps in args.local_steps:
        participants = [Participant(org, steps) for org in engine.orgs]
        seeds = iter(range(10**6))

        def engine_round(participants=participants, seeds=seeds) -> None:
            engine.commit(engine.train_updates(participants, round_seed=next(seeds)))

        ours[steps] = timed(engine_round, args.repeats)
    evaluation = timed(lambda: benchmark.evaluate(engine.model), 3)
    updates = engine.train_updates([Participant(o, 4) for o in engine.orgs], round_seed=0)
    start = time.perf_counter()
    subsets = [
        [u for i, u in enumerate(updates) if mask >> i & 1] for mask in range(2 ** len(updates))
    ]
    for subset in subsets:
        engine.evaluate_coalition(subset)
    shapley_s = time.perf_counter() - start
    rss = peak_rss_mb()

    pattern = TrainerPattern(model, tokenizer, engine, datasets, config)
    theirs = {
        steps: timed(lambda s=steps: pattern.round(s), args.repeats) for steps in args.local_steps
    }

    print()
    print(
        "| local steps | engine wall | engine CPU | Trainer wall | Trainer CPU | speed-up wall | speed-up CPU |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for steps in args.local_steps:
        (ow, oc), (tw, tc) = ours[steps], theirs[steps]
        print(
            f"| {steps} | {ow:.3f} s | {oc:.3f} s | {tw:.3f} s | {tc:.3f} s "
            f"| {tw / ow:.2f}x | {tc / oc:.2f}x |"
        )
    print()
    print(
        f"benchmark evaluation of one model ({len(DOMAINS)} domains x 8 dialogues): "
        f"{evaluation[0]:.3f} s wall, {evaluation[1]:.3f} s CPU"
    )
    print(
        f"all {len(subsets)} coalitions of {len(updates)} updates (exact Shapley inputs), "
        f"evaluated without retraining: {shapley_s:.2f} s"
    )
    print(f"peak resident memory after the engine's rounds: {rss:.0f} MB (whole process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
