"""Independent runs as Ray tasks: ``evaluate.py --backend ray [--address auto|ray://...]``.

Each (scenario, mechanism, seed) run is one Ray task (one CPU), so a comparison spreads over
every node of a cluster.  A task plays its run in a run folder of its own on the worker (a
temporary folder there), then ships the folder's files back with its result (ledgers, and
adapters unless ``store_adapters`` is off: :func:`fedenv.folder_copies.folder_files`); the
driver writes them where the process pool would have left them (``<out>/envs/...``), so
``python -m chains verify`` checks a Ray comparison like any other.  The results are the same as
the process pool's (same seeds, one torch thread per run when runs fill the CPUs).

Without ``address`` a local Ray starts with ``workers`` CPUs and stops at the end; ``"auto"``
joins the cluster this machine belongs to and ``"ray://host:10001"`` a remote one (Ray Client);
a Ray already initialised by the caller is used as it is.  Every node needs fedenv installed (the
same environment as the driver); runs take one CPU each and one torch thread each on a cluster.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from fedenv.device import PROCESSES_VARIABLE, available_cpus
from fedenv.errors import ConfigError
from fedenv.folder_copies import folder_files, write_files


def require_ray() -> None:
    """Raise ConfigError("backend") unless Ray can be imported."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError(
            "backend", "ray needs Ray installed: pip install 'fedenv[ray]' (or the rllib extra)"
        ) from None


def run_on_ray(
    specs: Sequence[Any],
    run: Callable[[Any, Any], Any],
    policy: Any,
    *,
    workers: int,
    address: str | None,
    finished: Callable[[int, Any], None],
) -> None:
    """``run(spec, policy)`` for every spec as a Ray task; ``finished(index, result)`` as each
    returns (in completion order), its folder's files already written to ``spec.run_dir``."""
    require_ray()
    import ray

    started = not ray.is_initialized()
    if started:
        local = {"num_cpus": workers} if address is None else {}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, **local)
    processes = workers if address is None else None
    task = ray.remote(num_cpus=1, max_retries=0)(_run_task)
    try:
        pending = {task.remote(spec, run, policy, processes): i for i, spec in enumerate(specs)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                index = pending.pop(done[0])
                result, files = ray.get(done[0])
                folder = specs[index].run_dir
                if folder is not None:
                    write_files(folder, files)
                    result = dataclasses.replace(result, run_dir=folder)
                finished(index, result)
        except BaseException:  # a failed run (or Ctrl-C): cancel the rest
            for ref in pending:
                ray.cancel(ref)
            raise
    finally:
        if started:
            ray.shutdown()


def _run_task(spec: Any, run: Callable[[Any, Any], Any], policy: Any, processes: int | None):
    """On the worker: one torch thread per run when runs fill its CPUs; its own run folder."""
    import torch

    from fedenv.device import cpu_threads

    os.environ[PROCESSES_VARIABLE] = str(processes or available_cpus())
    torch.set_num_threads(cpu_threads())
    if spec.run_dir is None:
        return run(spec, policy), {}
    with tempfile.TemporaryDirectory(prefix="fedenv-ray-run-") as folder:
        result = run(dataclasses.replace(spec, run_dir=folder), policy)
        return result, folder_files(folder)
