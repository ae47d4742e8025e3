"""TorchRL (extra ``torchrl``): the env in TorchRL's PettingZoo wrapper, and MAPPO-style modules.

    from fedenv.integrations.torchrl import torchrl_env, mappo_modules, mappo_loss

    env = torchrl_env("tiny")                  # action masks, agent masks and the global state
    actor, critic = mappo_modules(env)         # shared-parameter actor, centralised critic on state
    loss = mappo_loss(actor, critic)           # ClipPPOLoss + GAE, done agents left out
    collector = Collector(env, actor, frames_per_batch=64, total_frames=6400)
    for data in collector: ...                 # docs/integrations.md has the whole loop

:func:`torchrl_env` is TorchRL's own ``PettingZooWrapper`` around ``fedenv.parallel_env`` with
``use_mask=True`` (organizations finish at different rounds), ``done_on_any=False`` (the episode
ends when the last one does), ``return_state=True`` (``env.state()`` as ``"state"``) and the
budget's action mask read from the infos (``(group, "action_mask")``).  TorchRL sends an action
for every organization, finished ones too; fedenv ignores those (its default, non-strict mode).
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.envs.libs.pettingzoo import PettingZooWrapper
from torchrl.modules import MaskedCategorical, MultiAgentMLP, ProbabilisticActor
from torchrl.objectives import ClipPPOLoss, ValueEstimators

from fedenv.fedorg import parallel_env

GROUP = "orgs"


def torchrl_env(scenario: str = "default", *, seed: int | None = None, **env_kwargs: Any):
    """TorchRL's ``PettingZooWrapper`` around ``fedenv.parallel_env(scenario, **env_kwargs)``:
    one group ``"orgs"`` of every organization, masks and state on."""
    env = parallel_env(scenario, **env_kwargs)
    return PettingZooWrapper(
        env,
        group_map={GROUP: list(env.possible_agents)},
        use_mask=True,
        done_on_any=False,
        return_state=True,
        categorical_actions=True,
        seed=seed,
    )


class _StateCritic(nn.Module):
    """V(state) for each agent: one MLP on the global state, one output per agent."""

    def __init__(self, state_size: int, agents: int, hidden: int) -> None:
        super().__init__()
        self.agents = agents
        self.net = nn.Sequential(
            nn.Linear(state_size, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, agents),
        )

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(state).unsqueeze(-1)  # [..., agents, 1]


def mappo_modules(env, *, hidden: int = 64) -> tuple[ProbabilisticActor, TensorDictModule]:
    """A decentralised actor (one MLP shared by every organization, its own observation in,
    masked categorical out) and a centralised critic (the global ``state`` in)."""
    observation = env.observation_spec[GROUP, "observation"]
    agents, size = observation.shape[-2], observation.shape[-1]
    actions = env.full_action_spec[GROUP, "action"].space.n
    logits = TensorDictModule(
        MultiAgentMLP(
            n_agent_inputs=size,
            n_agent_outputs=actions,
            n_agents=agents,
            centralised=False,
            share_params=True,
            depth=2,
            num_cells=hidden,
            activation_class=nn.Tanh,
        ),
        in_keys=[(GROUP, "observation")],
        out_keys=[(GROUP, "logits")],
    )
    actor = ProbabilisticActor(
        logits,
        in_keys={"logits": (GROUP, "logits"), "mask": (GROUP, "action_mask")},
        out_keys=[(GROUP, "action")],
        distribution_class=MaskedCategorical,
        return_log_prob=True,
        log_prob_key=(GROUP, "sample_log_prob"),
    )
    critic = TensorDictModule(
        _StateCritic(env.observation_spec["state"].shape[-1], agents, hidden),
        in_keys=["state"],
        out_keys=[(GROUP, "state_value")],
    )
    return actor, critic


def mappo_loss(
    actor: ProbabilisticActor,
    critic: TensorDictModule,
    *,
    gamma: float = 0.99,
    lmbda: float = 0.95,
    clip_epsilon: float = 0.2,
    entropy_coeff: float = 0.01,
) -> ClipPPOLoss:
    """PPO's clipped loss on the group's keys, GAE as its value estimator; positions of
    organizations that were done (the wrapper's ``(group, "mask")``) count for nothing."""
    loss = ClipPPOLoss(
        actor_network=actor,
        critic_network=critic,
        clip_epsilon=clip_epsilon,
        entropy_coeff=entropy_coeff,
        normalize_advantage=False,
    )
    loss.set_keys(
        reward=(GROUP, "reward"),
        action=(GROUP, "action"),
        sample_log_prob=(GROUP, "sample_log_prob"),
        value=(GROUP, "state_value"),
        done=(GROUP, "done"),
        terminated=(GROUP, "terminated"),
    )
    loss.loss_mask_key = (GROUP, "mask")
    loss.make_value_estimator(ValueEstimators.GAE, gamma=gamma, lmbda=lmbda)
    return loss
