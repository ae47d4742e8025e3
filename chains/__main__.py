"""Command line: `python -m chains verify PATH` checks a ledger file or every ledger in a run folder.

Exit status 0 when everything verifies, 1 when something does not (the first bad block of each file
and the reason are printed), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from chains.verify import verify_path


def _tree_head(text: str) -> tuple[int, bytes]:
    size, _, root = text.partition(":")
    try:
        parsed = int(size), bytes.fromhex(root)
    except ValueError:
        parsed = (-1, b"")
    if parsed[0] < 0 or len(parsed[1]) != 32:
        raise argparse.ArgumentTypeError(f"expected SIZE:ROOT with a 64-hex root, got {text!r}")
    return parsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chains", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="verify a ledger file or a run folder's ledgers")
    verify.add_argument("path", help="a *.db ledger file, or a folder to search for ledgers")
    verify.add_argument("--json", action="store_true", help="print the reports as JSON")
    verify.add_argument("--tree-head", action="append", default=[], type=_tree_head,
                        metavar="SIZE:ROOT", help="a tree head seen earlier (root in hex) that the "
                        "public ledger must still extend; repeatable")
    args = parser.parse_args(argv)

    reports = verify_path(args.path, known_heads=args.tree_head)
    if args.json:
        print(json.dumps([asdict(r) for r in reports], indent=2))
    else:
        for report in reports:
            print(report.summary())
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
