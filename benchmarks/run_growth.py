"""How fast a run folder grows: bytes on disk per env step, by part, in the steady state.

    python benchmarks/run_growth.py                       # tiny and default, each storage mode
    python benchmarks/run_growth.py --scenarios tiny --episodes 5

For each scenario and storage mode (hashes only; every adapter; the last K episodes'
adapters) an env plays ``--warmup`` episodes (every organization at its highest level, so each
round has every update), is closed (the write-ahead logs are checkpointed into the files), then
plays ``--episodes`` more and is closed again; the difference in the folder's size, divided by
the steps of those episodes, is the growth per step.  The warm-up lets the first episode's
private updates reach their blockToLive, so the figure is the long-run rate.  Sizes are file
sizes (what ``du`` counts before filesystem blocks), by part: the public ledger, the orderer's
copy of the channel, the peers' copies, the adapters.
"""

from __future__ import annotations

import argparse
import shutil
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


def part_of(relative: Path) -> str:
    name = relative.as_posix()
    if name.startswith("adapters/"):
        return "adapters"
    if name.startswith("public.db"):
        return "public ledger"
    if name.endswith("orderer.db") or "orderer.db-" in name:
        return "orderer (channel)"
    if name.startswith("fabric/"):
        return "peers (channel)"
    return "other"


def folder_sizes(folder: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for file in folder.rglob("*"):
        if file.is_file() and not file.is_symlink():
            part = part_of(file.relative_to(folder))
            sizes[part] = sizes.get(part, 0) + file.stat().st_size
    return sizes


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


def measure(scenario: str, mode: str, warmup: int, episodes: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="fedenv-growth-")) / "env"
    try:
        start = time.perf_counter()
        play(scenario, folder, warmup, 0, MODES[mode])
        before = folder_sizes(folder)
        steps = play(scenario, folder, episodes, warmup, MODES[mode])
        after = folder_sizes(folder)
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
    parser.add_argument("--episodes", type=int, default=3, help="episodes measured")
    args = parser.parse_args(argv)
    parts = ("public ledger", "orderer (channel)", "peers (channel)", "adapters")
    print(f"bytes per env step (warm-up {args.warmup} episodes, then {args.episodes} measured; "
          f"every organization at its highest level)")
    print(f"{'scenario':<9} {'mode':<26} {'total':>9} " + " ".join(f"{p:>18}" for p in parts))
    for scenario in args.scenarios:
        for mode in args.modes:
            g = measure(scenario, mode, args.warmup, args.episodes)
            cells = " ".join(f"{g.get(p, 0):>18,.0f}" for p in parts)
            print(f"{scenario:<9} {mode:<26} {g['total']:>9,.0f} {cells}   "
                  f"({g['steps']} steps, {g['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
