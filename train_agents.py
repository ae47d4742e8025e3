"""Train organizations' policies on fedenv (or any PettingZoo ParallelEnv).

    python train_agents.py                                  # Q-learning on the default scenario
    python train_agents.py --scenario tiny --algo dqn --episodes 50
    python train_agents.py --algo random,org_a=q_learning   # per-organization algorithms
    python train_agents.py --resume runs/<name>             # continue a killed run
    tensorboard --logdir runs

Every option and its help: ``python train_agents.py --help``. The loop, checkpoints and logging
live in :mod:`agents.training`; this file is the command line.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Sequence

from pettingzoo import ParallelEnv

from agents.arguments import option_name, parse_config
from agents.config import ConfigError
from agents.run_config import EnvFactory, RunPaths, TrainConfig, create_env, prepare_run
from agents.training import train


def load_env_factory(spec: str) -> EnvFactory:
    """``"module:function"`` -> the function (e.g. ``fedenv:parallel_env``)."""
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise ConfigError("env", f"cannot load {spec!r}: {error}") from None
    if not callable(factory):
        raise ConfigError("env", f"{spec!r} is not callable")
    return factory


def _setup_error(error: Exception, config: TrainConfig) -> ConfigError:
    """An env construction error, as a ConfigError naming the option responsible."""
    field = getattr(error, "field", None)
    if isinstance(field, str):
        problem = getattr(error, "problem", str(error))
        overrides = config.env_overrides()
        if field in overrides:
            return ConfigError("override", f"{field}={overrides[field]!r}: {problem}")
        where = "" if field == "scenario" else f"{field}: "
        return ConfigError("scenario", f"{config.scenario!r}: {where}{problem}")
    return ConfigError("scenario", f"cannot create the env for {config.scenario!r}: {error}")


def _open_env(config: TrainConfig, make_env: EnvFactory, paths: RunPaths) -> ParallelEnv:
    try:
        return create_env(config, make_env, paths)
    except ConfigError:
        raise
    except (OSError, LookupError, ValueError, TypeError) as error:
        raise _setup_error(error, config) from error


def main(argv: Sequence[str] | None = None) -> int:
    config, given, parser = parse_config(
        TrainConfig, argv, prog="train_agents.py",
        description=(TrainConfig.__doc__ or "").strip(),
        epilog="TensorBoard: tensorboard --logdir runs")
    paths: RunPaths | None = None
    fresh_folder = False
    try:
        config, paths = prepare_run(config, given)
        make_env = load_env_factory(config.env)
        fresh_folder = not paths.root.exists()
        env = _open_env(config, make_env, paths)
        try:
            result = train(config, env, paths)
        finally:
            env.close()
    except ConfigError as error:
        if fresh_folder and paths is not None and not paths.config.exists():
            shutil.rmtree(paths.root, ignore_errors=True)  # nothing of the run was started
        parser.error(f"argument {option_name(error.field)}: {error.problem}")  # exits 2
    except KeyboardInterrupt:
        if paths is not None and paths.checkpoint.exists():
            print(f"\ninterrupted; continue with: python train_agents.py --resume {paths.root}",
                  file=sys.stderr)
        return 130
    print()
    print(result.summary)
    print(f"\n{result.episodes} episodes, {result.global_step} env steps; run folder "
          f"{result.run_dir}\nlogs: tensorboard --logdir {result.run_dir.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
