"""Command line: `python -m chains verify PATH` checks a ledger file or every ledger in a run folder.

Exit status 0 when everything verifies, 1 when something does not (each file's problems are
printed with a reason, a malformed `--tree-head` included), 2 on a usage error argparse reports.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict

from chains.report import Problem, VerifyReport
from chains.verify import verify_path

_TREE_HEAD = re.compile(r"([0-9]{1,18}):([0-9a-fA-F]{64})\Z")


def parse_tree_head(text: str) -> tuple[int, bytes]:
    """(size, root) of "SIZE:ROOT" (decimal size, 64 hex digits); ValueError otherwise."""
    found = _TREE_HEAD.match(text) if text.isascii() else None
    if found is None:
        raise ValueError(f"expected SIZE:ROOT (a decimal size and a 64-hex root), got "
                         f"{text[:100]!r}")
    return int(found.group(1)), bytes.fromhex(found.group(2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chains", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="verify a ledger file or a run folder's ledgers")
    verify.add_argument("path", help="a *.db ledger file, or a folder to search for ledgers")
    verify.add_argument("--json", action="store_true", help="print the reports as JSON")
    verify.add_argument("--tree-head", action="append", default=[], metavar="SIZE:ROOT",
                        help="a tree head seen earlier (root in hex) that the public ledger must "
                        "still extend; repeatable")
    args = parser.parse_args(argv)

    heads, reports = [], []
    for text in args.tree_head:
        try:
            heads.append(parse_tree_head(text))
        except ValueError as exc:
            reports.append(VerifyReport("--tree-head", "argument", False, 0, 0,
                                        [Problem(None, "bad-tree-head", str(exc))]))
    if not reports:
        reports = verify_path(args.path, known_heads=heads)
    if args.json:
        print(json.dumps([asdict(r) for r in reports], indent=2))
    else:
        for report in reports:
            print(report.summary())
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
