"""Public-ledger throughput and verification speed (and the channel figures, when available).

    python benchmarks/chains.py                  # 100,000 transactions, blocks of 250
    python benchmarks/chains.py --txs 20000 --block-size 500

Prints: signed transactions appended and committed per second (client signing, validation at
submit, SQLite commit of each block with fsync), full verification time of the file, and the cost
of inclusion and consistency proofs. Wall and CPU seconds are both shown: on a shared machine the
CPU time is the figure that does not depend on the neighbours. If benchmarks/channel_bench.py exists, its
`run_channel_benchmark()` figures follow.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import io
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file is named like the
# package it measures: put the repository root there instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from chains.identity import OrgCA
from chains.public_ledger import LedgerConfig, PublicLedger
from chains.verify import verify_ledger_file


@dataclass
class Args:
    txs: int = 100_000          # transactions to append (plus the genesis)
    block_size: int = 250       # transactions per block
    orgs: int = 8               # organizations, one client identity each
    synchronous: str = "FULL"   # SQLite fsync level
    seed: int = 0


def run_public_benchmark(args: Args, folder: Path) -> dict[str, float]:
    cas = [OrgCA.create(f"Org{i}MSP", seed=f"bench-{args.seed}".encode()) for i in range(args.orgs)]
    clients = [ca.issue(f"client{i}", "client") for i, ca in enumerate(cas)]
    orderer = cas[0].issue("orderer0", "orderer")
    config = LedgerConfig(max_block_txs=args.block_size, synchronous=args.synchronous)
    path = folder / "public.db"
    ledger = PublicLedger.create(path, orgs=cas, proposer=orderer, config=config)
    rng = random.Random(args.seed)
    ids = []
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(args.txs):
        digest = hashlib.sha256(rng.randbytes(32)).hexdigest()
        payload = {"round": i // args.orgs, "digest": digest, "examples": 128, "loss": 2.5}
        ids.append(ledger.transact(clients[i % args.orgs], "update-hash", payload))
    ledger.seal()
    append_s, append_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    size = ledger.tree_size

    start = time.perf_counter()
    picks = rng.sample(ids, min(200, len(ids)))
    root = ledger.tree_head().root
    assert all(ledger.inclusion_proof(t).verify(root) for t in picks)
    inclusion_ms = (time.perf_counter() - start) / len(picks) * 1e3
    heads = list(ledger.tree_heads())
    start = time.perf_counter()
    olds = rng.sample(heads, min(50, len(heads)))
    for old in olds:
        assert ledger.consistency_proof(old.size).verify(old.root, root)
    consistency_ms = (time.perf_counter() - start) / len(olds) * 1e3
    ledger.close()

    start, cpu = time.perf_counter(), time.process_time()
    report = verify_ledger_file(path)
    verify_s, verify_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    assert report.ok, report.summary()
    return {"transactions": size, "blocks": report.blocks, "append_s": append_s,
            "append_tx_per_s": args.txs / append_s, "append_cpu_s": append_cpu_s,
            "verify_s": verify_s, "verify_cpu_s": verify_cpu_s,
            "verify_tx_per_s": size / verify_s, "inclusion_ms": inclusion_ms,
            "consistency_ms": consistency_ms, "file_mb": path.stat().st_size / 2**20}


def run_channel_figures() -> tuple[dict, str] | None:
    """chains-fabric's figures and whatever its benchmark printed (None if it is not there)."""
    bench = Path(__file__).with_name("channel_bench.py")
    if not bench.exists():
        return None
    spec = importlib.util.spec_from_file_location("channel_bench", bench)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        figures = module.run_channel_benchmark()
    return figures, printed.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in vars(Args()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    args = Args(**vars(parser.parse_args()))
    with tempfile.TemporaryDirectory() as tmp:
        r = run_public_benchmark(args, Path(tmp))
    print(f"public ledger: {r['transactions']:,} transactions in {r['blocks']:,} blocks "
          f"of {args.block_size}, {args.orgs} orgs, synchronous={args.synchronous}, "
          f"file {r['file_mb']:.1f} MiB")
    print(f"  append (sign + validate + commit): {r['append_tx_per_s']:,.0f} tx/s "
          f"({r['append_s']:.1f} s wall, {r['append_cpu_s']:.1f} s CPU)")
    print(f"  full verification:                 {r['verify_s']:.1f} s wall, "
          f"{r['verify_cpu_s']:.1f} s CPU ({r['verify_tx_per_s']:,.0f} tx/s)")
    print(f"  inclusion proof + check:           {r['inclusion_ms']:.2f} ms")
    print(f"  consistency proof + check:         {r['consistency_ms']:.2f} ms")
    channel = run_channel_figures()
    if channel is None:
        print("channels: benchmarks/channel_bench.py not found")
    elif channel[1].strip():  # it printed its own summary
        print(channel[1].rstrip())
    else:
        print("channels:")
        for key, value in channel[0].items():
            shown = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
            print(f"  {key:<34} {shown}")


if __name__ == "__main__":
    main()
