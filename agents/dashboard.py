"""TensorBoard's HParams and Custom Scalars plugins, for comparing runs.

- :func:`write_hparams`: a run's hyperparameters and final metrics as the HParams plugin's
  experiment, session-start and session-end summaries, written into the run's own event files
  (``torch.utils.tensorboard.summary.hparams``; ``SummaryWriter.add_hparams`` would open a
  separate sub-folder), plus each final metric as a scalar under its ``hparams/`` tag, which is
  what the HParams tab reads.  Hyperparameter values must be numbers, booleans or strings:
  :func:`flat_hparams` turns a nested config into such a dict.
- :data:`ORG_LAYOUT` / :func:`write_layout`: the Custom Scalars layout with one chart each for
  every organization's episodic return, participation and payout (``charts/episodic_return/*``,
  ``charts/participation/*``, ``incentives/payout/*``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

ORG_LAYOUT: dict[str, dict[str, list[Any]]] = {
    "organizations": {
        "episodic return per organization": ["Multiline", [r"charts/episodic_return/.*"]],
        "participation per organization": ["Multiline", [r"charts/participation/.*"]],
        "payout per organization": ["Multiline", [r"incentives/payout/.*"]],
    }
}


def flat_hparams(config: Any, prefix: str = "") -> dict[str, float | int | bool | str]:
    """A (nested) dataclass or mapping as ``{dotted name: number, bool or string}``; sequences
    become comma-joined strings, ``None`` the empty string."""
    items = (dataclasses.asdict(config) if dataclasses.is_dataclass(config)
             else dict(config)).items()
    flat: dict[str, float | int | bool | str] = {}
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_hparams(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = ",".join(str(v) for v in value)
        elif value is None:
            flat[name] = ""
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def write_hparams(writer: SummaryWriter, hyperparameters: Mapping[str, Any],
                  metrics: Mapping[str, float], step: int = 0) -> None:
    """The HParams plugin's summaries and the final ``metrics`` (tags ``hparams/<name>``)."""
    tags = {f"hparams/{name}": float(value) for name, value in metrics.items()}
    experiment, start, end = hparams(dict(hyperparameters), tags)
    file_writer = writer.file_writer
    assert file_writer is not None
    for summary in (experiment, start, end):
        file_writer.add_summary(summary)
    for tag, value in tags.items():
        writer.add_scalar(tag, value, step)
    writer.flush()


def write_layout(writer: SummaryWriter) -> None:
    """The Custom Scalars layout of :data:`ORG_LAYOUT`."""
    writer.add_custom_scalars(ORG_LAYOUT)
