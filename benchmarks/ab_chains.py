"""A/B throughput of chains: two commits' code measured in one run, interleaved.

On a machine shared with other jobs, figures from different hours cannot be compared; this
script alternates the two versions in fresh subprocesses (old, new, new, old, ...) so both see
the same load, and reports per version the median of each figure and the ratio new / old.
Each version runs its own benchmarks/chains.py and benchmarks/channel_bench.py, so an API
change between the commits needs no adapter.

    python benchmarks/ab_chains.py                        # old: merge-base with main; new: tree
    python benchmarks/ab_chains.py --old 184964e --rounds 5 --txs 30000 --channel-txs 1500

Figures: public append (sign + validate + commit, tx/s), full verification (tx/s), channel end
to end (tx/s); each both per wall-clock second and per CPU second of the process (the latter
depends less on the neighbours).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("append_tx_per_s", "append_tx_per_cpu_s", "verify_tx_per_s", "verify_tx_per_cpu_s",
           "channel_tx_per_s", "channel_tx_per_cpu_s")

DRIVER = """
import contextlib, importlib.util, io, json, sys, tempfile
from pathlib import Path
root = Path(sys.argv[1]); txs, channel_txs = int(sys.argv[2]), int(sys.argv[3])
sys.path.insert(0, str(root))

def load(name):
    spec = importlib.util.spec_from_file_location(name, root / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

public, channel = load("chains"), load("channel_bench")
with tempfile.TemporaryDirectory() as tmp:
    r = public.run_public_benchmark(public.Args(txs=txs, block_size=250), Path(tmp))
with contextlib.redirect_stdout(io.StringIO()):
    c = channel.run_channel_benchmark(channel_txs)
print(json.dumps({
    "append_tx_per_s": txs / r["append_s"], "append_tx_per_cpu_s": txs / r["append_cpu_s"],
    "verify_tx_per_s": r["transactions"] / r["verify_s"],
    "verify_tx_per_cpu_s": r["transactions"] / r["verify_cpu_s"],
    "channel_tx_per_s": c["tx_per_s"], "channel_tx_per_cpu_s": c["tx_per_cpu_s"]}))
"""


def export(rev: str, target: Path) -> Path:
    """The chains/ and benchmarks/ folders of commit `rev`, unpacked under `target`."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "chains", "benchmarks"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def measure(tree: Path, txs: int, channel_txs: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", DRIVER, str(tree), str(txs), str(channel_txs)],
                          check=True, capture_output=True, text=True, cwd=tree)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default=None, help="commit of the baseline (default: the "
                        "merge-base of HEAD and main)")
    parser.add_argument("--new", default=None, help="commit to compare (default: the working "
                        "tree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--txs", type=int, default=20_000)
    parser.add_argument("--channel-txs", type=int, default=1_000)
    args = parser.parse_args()
    old = args.old or subprocess.run(["git", "-C", str(ROOT), "merge-base", "HEAD", "main"],
                                     check=True, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="ab-chains-") as tmp:
        trees = {"old": export(old, Path(tmp) / "old"),
                 "new": export(args.new, Path(tmp) / "new") if args.new else ROOT}
        runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
        for round_ in range(args.rounds):
            for name in (("old", "new") if round_ % 2 == 0 else ("new", "old")):
                runs[name].append(measure(trees[name], args.txs, args.channel_txs))
                print(f"round {round_ + 1} {name}: " + ", ".join(
                    f"{k} {v:,.0f}" for k, v in runs[name][-1].items()), flush=True)
    print(f"\nold {old[:12]} vs new {args.new or 'working tree'}: medians of {args.rounds} "
          f"interleaved runs ({args.txs:,} public txs, {args.channel_txs:,} channel txs)")
    for figure in FIGURES:
        a = statistics.median(r[figure] for r in runs["old"])
        b = statistics.median(r[figure] for r in runs["new"])
        print(f"  {figure:<22} old {a:>9,.0f}   new {b:>9,.0f}   new/old {b / a:5.2f}")


if __name__ == "__main__":
    main()
