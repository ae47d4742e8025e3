"""Time and peak memory of a piece of code, measured in a fresh interpreter.

``measured(setup, code)`` runs ``setup`` (imports, building inputs: not timed) then ``code`` in
a new Python process and returns what ``code`` took: wall seconds, the process's peak resident
memory (everything the process ever held, its imports included, so the figure is an upper
bound of what ``code`` needs) and the error it raised, if any, as ``"<type>: <message>"``.
The peak is Linux's ``VmHWM`` (``/proc/self/status``), the high-water mark of this program's
own memory: ``getrusage``'s ``ru_maxrss`` would report the parent's peak instead when the
parent was larger at fork (Linux carries it across ``fork`` and ``exec``); it is the fallback
where ``/proc`` is missing.  A bound checked this way cannot be hidden by memory that the test
process already holds, and a runaway allocation cannot take the test process down with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_WRAPPER = """
import json, re, resource, sys, time
{setup}
error = None
start = time.perf_counter()
try:
{code}
except Exception as exc:
    error = f"{{type(exc).__name__}}: {{exc}}"
seconds = time.perf_counter() - start
try:
    with open("/proc/self/status") as status:
        peak = int(re.search(r"VmHWM:\\s*(\\d+) kB", status.read()).group(1)) * 1024
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
print("MEASURED " + json.dumps({{"seconds": seconds, "peak_bytes": peak, "error": error}}))
"""


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_bytes: int
    error: str | None


def measured(setup: str, code: str, *, timeout: float = 300) -> Measured:
    script = _WRAPPER.format(setup=textwrap.dedent(setup),
                             code=textwrap.indent(textwrap.dedent(code), "    "))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("MEASURED ")), None)
    assert done.returncode == 0 and line, done.stderr[-3000:]
    return Measured(**json.loads(line.removeprefix("MEASURED ")))
