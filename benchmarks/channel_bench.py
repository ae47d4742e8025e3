"""Throughput of a Fabric-style channel: endorse (2 of 3 orgs), order, validate, commit.

Three organizations with one peer each share a channel whose policy is
OutOf(2, 'Org1.peer', 'Org2.peer', 'Org3.peer'); clients of all three submit transactions that
read and write one key each. Every peer validates every block (creator signature, both
endorsement signatures, policy, MVCC) and commits it to its own SQLite file. The figure that
matters is end-to-end committed transactions per second.

    python benchmarks/channel_bench.py [--n-tx 2000] [--batch-size 100] [--in-memory]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, benchmarks/ is first on sys.path and benchmarks/chains.py would shadow the
# `chains` package: put the repository root first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chains.fabric import Network, ValidationCode, verify_channel_file

ORGS = ("Org1", "Org2", "Org3")
POLICY = "OutOf(2, 'Org1.peer', 'Org2.peer', 'Org3.peer')"


def _record(stub, key: str, value: str) -> str:
    previous = stub.get_state(key)
    stub.put_state(key, value)
    return "updated" if previous is not None else "created"


def _ed25519_verify_us(rounds: int = 500) -> float:
    """What one signature check costs on this machine right now (it is the dominant cost)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    message = bytes(2048)
    signature, public = key.sign(message), key.public_key()
    t = time.perf_counter()
    for _ in range(rounds):
        public.verify(signature, message)
    return 1e6 * (time.perf_counter() - t) / rounds


def run_channel_benchmark(n_tx: int = 2000, *, batch_size: int = 100, in_memory: bool = False,
                          seed: int = 0) -> dict[str, float]:
    """Submit `n_tx` transactions, commit them all, and return the measured figures."""
    with tempfile.TemporaryDirectory(prefix="channel-bench-") as folder:
        net = Network.create(ORGS, seed=seed, path=None if in_memory else Path(folder))
        channel = net.create_channel("bench", ORGS, POLICY, batch_size=batch_size)
        channel.install_chaincode("kv", {"record": _record})
        gateways = [channel.gateway(net.client(org)) for org in ORGS]
        start_height = channel.height
        endorse_s = 0.0
        commits = []
        verify_us = _ed25519_verify_us()
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(n_tx):
            gw = gateways[i % len(gateways)]
            t = time.perf_counter()
            transaction = gw.endorse(gw.propose("kv", "record", f"key{i:06d}", f"v{i}"))
            endorse_s += time.perf_counter() - t
            commits.append(transaction.submit())  # the orderer cuts a block when one is full
        channel.flush()
        total_s = time.perf_counter() - t0
        cpu_s = time.process_time() - cpu0
        valid = sum(c.status(wait=False).code is ValidationCode.VALID for c in commits)
        blocks = channel.height - start_height
        net.close()
        verify_s = 0.0
        if not in_memory:
            t = time.perf_counter()
            report = verify_channel_file(Path(folder) / "bench" / "peer0.Org1.db")
            verify_s = time.perf_counter() - t
            assert report.ok, report.summary()
    figures = {
        "n_tx": float(n_tx),
        "valid": float(valid),
        "blocks": float(blocks),
        "peers": float(len(ORGS)),
        "seconds": total_s,
        "tx_per_s": n_tx / total_s,
        "cpu_share": cpu_s / total_s,
        "tx_per_cpu_s": n_tx / cpu_s,
        "ed25519_verify_us": verify_us,
        "endorse_ms_per_tx": 1000 * endorse_s / n_tx,
        "order_validate_commit_ms_per_tx": 1000 * (total_s - endorse_s) / n_tx,
        "verify_file_tx_per_s": n_tx / verify_s if verify_s else 0.0,
    }
    print(f"channel benchmark: {n_tx} txs, policy 2 of 3 orgs, {len(ORGS)} committing peers, "
          f"batch {batch_size}, {'in memory' if in_memory else 'SQLite files'}")
    print(f"  committed VALID          {valid}/{n_tx} in {blocks} blocks")
    print(f"  end to end               {figures['tx_per_s']:.0f} tx/s ({total_s:.2f} s wall)")
    print(f"  per CPU second           {figures['tx_per_cpu_s']:.0f} tx/s (this process got "
          f"{100 * figures['cpu_share']:.0f}% of a core; one Ed25519 verify took "
          f"{verify_us:.0f} us)")
    print(f"  endorse (client+2 peers) {figures['endorse_ms_per_tx']:.3f} ms/tx")
    print(f"  order+validate+commit    {figures['order_validate_commit_ms_per_tx']:.3f} ms/tx "
          f"(all {len(ORGS)} peers)")
    if not in_memory:
        print(f"  offline verify (1 file)  {figures['verify_file_tx_per_s']:.0f} tx/s")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-tx", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--in-memory", action="store_true", help="no SQLite files")
    args = parser.parse_args()
    run_channel_benchmark(args.n_tx, batch_size=args.batch_size, in_memory=args.in_memory)


if __name__ == "__main__":
    main()
