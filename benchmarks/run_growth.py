"""How fast a run folder grows: bytes on disk per env step, by part, in the steady state.

    python benchmarks/run_growth.py                       # tiny and default, each storage mode
    python benchmarks/run_growth.py --scenarios tiny --episodes 5

For each scenario and storage mode (hashes only; every adapter; the last K episodes'
adapters) an env plays ``--warmup`` episodes (every organization at its highest level, so each
round has every update), is closed (the write-ahead logs are checkpointed into the files), then
plays ``--episodes`` more and is closed again; the difference in the folder's size, divided by
the steps of those episodes, is the growth per step.  The warm-up lets the first episode's
private updates reach their blockToLive (3 x max_rounds channel blocks, about one episode), so
the figure is the long-run rate.  By default tiny measures 40 episodes (120 steps, about 15
s) and other scenarios 30 (default: 300 steps, about 3 minutes a mode): SQLite files grow by
whole pages (16 KiB: `chains.sqlite_files.PAGE_SIZE`), one page per table at a time, so a
short window reports page rounding rather than the rate (over 48 steps one page is 341 bytes a
step, over 300 steps 55); ``--episodes`` sets one count for every scenario.  Sizes are file sizes (what ``du`` counts before filesystem
blocks); each SQLite file is split by the tables its pages hold (SQLite's ``dbstat``):

    public          the public ledger (public.db: blocks, transactions, Merkle nodes)
    blocks@orderer  the channel's blocks, the orderer's copy (fabric/<channel>/orderer.db)
    blocks@peers    the channel's blocks and transactions, every peer's copy (since its
                    last snapshot: chains.fabric.snapshot)
    private@peers   private data collections (values, and their hashes) at the peers
    state@peers     the peers' world state and ledger snapshot (and their other tables)
    free pages      pages SQLite freed (purged values) and will reuse
    adapters        adapter files (adapters/)
    other           anything else (config.json, the lock, a write-ahead log left behind)

``--payload`` counts, for SQLite files, the bytes their rows hold instead of their pages (no
page slack, no free pages): where the bytes go, at a finer grain than 4 KiB pages.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# Run as a script, benchmarks/ is first on sys.path and benchmarks/chains.py would shadow the
# chains package: the repository comes first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fedenv

MODES = {  # name -> env options
    "hashes only": {"store_adapters": False},
    "all adapters": {"store_adapters": True},
    "last 1 episode's adapters": {"store_adapters": True, "keep_adapter_episodes": 1},
}


PARTS = ("public", "blocks@orderer", "blocks@peers",
         "private@peers", "state@peers", "free pages", "adapters", "other")
_PEER_TABLES = {  # a peer's SQLite tables (chains.fabric.store) -> the part they hold
    "blocks": "blocks@peers", "transactions": "blocks@peers", "certificates": "blocks@peers",
    "sqlite_autoindex_certificates_1": "blocks@peers",
    "private_state": "private@peers", "hashed_state": "private@peers",
}


def database_parts(file: Path, relative: str, payload: bool = False) -> dict[str, int]:
    """The bytes of one SQLite file by part: its pages by the table (or index) they hold
    (SQLite's dbstat), free pages apart; a write-ahead log left beside it counts as "other".
    `payload`: the bytes the rows hold instead (no page slack, no free pages)."""
    if relative == "public.db" or relative.startswith("public-eth.db"):
        default = "public"
    elif relative.endswith("orderer.db"):
        default = "blocks@orderer"
    else:
        default = "state@peers"
    connection = sqlite3.connect(f"{file.as_uri()}?mode=ro", uri=True)
    try:
        (page_size,) = connection.execute("PRAGMA page_size").fetchone()
        (free,) = connection.execute("PRAGMA freelist_count").fetchone()
        measure = "payload" if payload else "pgsize"
        rows = connection.execute(f"SELECT name, SUM({measure}) FROM dbstat GROUP BY name"
                                  ).fetchall()
    finally:
        connection.close()
    parts = {} if payload else {"free pages": free * page_size}
    for table, size in rows:
        part = _PEER_TABLES.get(table, default) if default.endswith("@peers") else default
        parts[part] = parts.get(part, 0) + size
    if not payload:
        parts["other"] = file.stat().st_size - sum(parts.values())  # the header page's rest: 0
    return parts


def folder_sizes(folder: Path, payload: bool = False) -> dict[str, int]:
    """The folder's bytes (file sizes, as ``du`` counts them before filesystem blocks) by
    part; every byte counts once (`payload`: SQLite files count the bytes their rows hold)."""
    sizes: dict[str, int] = {}
    for file in folder.rglob("*"):
        if not file.is_file() or file.is_symlink():
            continue
        relative = file.relative_to(folder).as_posix()
        if relative.endswith(".db"):
            parts = database_parts(file, relative, payload)
        else:
            parts = {"adapters" if relative.startswith("adapters/") else "other":
                     file.stat().st_size}
        for part, size in parts.items():
            sizes[part] = sizes.get(part, 0) + size
    return sizes


EPISODES = {"tiny": 40}  # measured episodes by scenario (others: DEFAULT_EPISODES)
DEFAULT_EPISODES = 30


def play(scenario: str, folder: Path, episodes: int, first_seed: int, options: dict) -> int:
    env = fedenv.parallel_env(scenario, run_dir=folder, **options)
    steps = 0
    try:
        for episode in range(episodes):
            env.reset(seed=first_seed + episode)
            while env.agents:
                env.step({a: env.action_space(a).n - 1 for a in env.agents})
                steps += 1
    finally:
        env.close()
    return steps


def measure(scenario: str, mode: str, warmup: int, episodes: int, payload: bool = False
            ) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="fedenv-growth-")) / "env"
    try:
        start = time.perf_counter()
        play(scenario, folder, warmup, 0, MODES[mode])
        before = folder_sizes(folder, payload)
        steps = play(scenario, folder, episodes, warmup, MODES[mode])
        after = folder_sizes(folder, payload)
        growth = {p: (after.get(p, 0) - before.get(p, 0)) / steps for p in after}
        growth["total"] = sum(growth.values())
        growth["seconds"] = time.perf_counter() - start
        growth["steps"] = steps
        return growth
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=["tiny", "default"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--warmup", type=int, default=2, help="episodes before measuring")
    parser.add_argument("--episodes", type=int, default=None,
                        help=f"episodes measured (default: {EPISODES} by scenario, else "
                             f"{DEFAULT_EPISODES})")
    parser.add_argument("--payload", action="store_true",
                        help="count the bytes SQLite rows hold (dbstat payload) instead of pages")
    args = parser.parse_args(argv)
    parts = list(PARTS)
    unit = "row bytes (dbstat payload)" if args.payload else "bytes"
    counts = {s: args.episodes or EPISODES.get(s, DEFAULT_EPISODES) for s in args.scenarios}
    measured = ", ".join(f"{s} {n}" for s, n in counts.items())
    print(f"{unit} per env step (warm-up {args.warmup} episodes, then measured: {measured}; "
          f"every organization at its highest level)")
    print(f"{'scenario':<9} {'mode':<26} {'total':>9} " + " ".join(f"{p:>14}" for p in parts))
    for scenario in args.scenarios:
        for mode in args.modes:
            g = measure(scenario, mode, args.warmup, counts[scenario], args.payload)
            cells = " ".join(f"{g.get(p, 0):>14,.0f}" for p in parts)
            print(f"{scenario:<9} {mode:<26} {g['total']:>9,.0f} {cells}   "
                  f"({g['steps']} steps, {g['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
