"""The HParams and Custom Scalars plugins in a training run's event files."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
from support_envs import parallel_env
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import plugin_data_pb2

from agents.dashboard import ORG_LAYOUT, flat_hparams
from agents.q_learning import QLearningConfig
from agents.training import TrainConfig, prepare_run, train


def _events(run_dir) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    config = TrainConfig(scenario="tiny", env="support_envs:parallel_env", runs_dir=str(root),
                         run_name="run", progress=False, episodes=4, eval_episodes=1)
    config, paths = prepare_run(config)
    env = parallel_env(config.scenario, seed=config.seed, run_dir=str(paths.env))
    train(config, env, paths, device=torch.device("cpu"), print_fn=lambda _: None)
    return paths.root


def test_a_training_run_writes_its_hparams_and_final_metrics(run_dir):
    acc = _events(run_dir)
    content = acc.PluginTagToContent("hparams")
    assert set(content) == {"_hparams_/experiment", "_hparams_/session_start_info",
                            "_hparams_/session_end_info"}
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = {k: v.ListFields()[0][1] for k, v in start.session_start_info.hparams.items()}
    assert hparams["algo"] == "q_learning" and hparams["episodes"] == 4
    assert hparams["q_learning.gamma"] == pytest.approx(0.9)
    assert hparams["q_learning.state"] == ",".join(QLearningConfig().state)
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    metrics = {m.name.tag for m in experiment.experiment.metric_infos}
    assert metrics == {"hparams/final_mean_return", "hparams/mean_return",
                       "hparams/participation", "hparams/eval_mean_return"}
    scalars = acc.Tags()["scalars"]
    assert metrics <= set(scalars)
    final = acc.Scalars("hparams/final_mean_return")[-1].value
    returns = [e.value for e in acc.Scalars("charts/episodic_return/org_0")]
    assert len(returns) == 4 and final == pytest.approx(
        sum(sum(acc.Scalars(f"charts/episodic_return/org_{i}")[e].value for i in range(3)) / 3
            for e in range(4)) / 4, rel=1e-5)


def test_a_training_run_writes_the_per_organization_layout(run_dir):
    acc = _events(run_dir)
    assert "custom_scalars__config__" in acc.PluginTagToContent("custom_scalars")
    event = acc.Tensors("custom_scalars__config__")[0]
    layout = layout_pb2.Layout.FromString(event.tensor_proto.string_val[0])
    charts = {c.title: list(c.multiline.tag) for cat in layout.category for c in cat.chart}
    assert charts == {title: spec[1] for title, spec in ORG_LAYOUT["organizations"].items()}


def test_flat_hparams_turns_nested_configs_into_plain_values():
    @dataclass
    class Inner:
        bins: tuple[int, ...] = (1, 2)
        rate: float = 0.5

    @dataclass
    class Outer:
        name: str = "x"
        inner: Inner = field(default_factory=Inner)
        nothing: None = None

    assert flat_hparams(Outer()) == {"name": "x", "inner.bins": "1,2", "inner.rate": 0.5,
                                     "nothing": ""}
