"""The learner's model document: what an actor with another ``learner=`` config adopts, what it refuses."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from learners.agent import Agent, AgentConfig
from learners.agent_model import ModelRefused, adopt_model, model_changes, model_doc
from policies.base import BasePolicy

torch.set_num_threads(1)
SPEC = {"state": ((6,), "float32")}
ACTOR = dict(num_critics=2, critic_hidden=(32, 32), actor_hidden=(32, 32), residual_scale=0.4, gate=True)
LEARNER = dict(num_critics=3, critic_hidden=(48, 48, 48), actor_hidden=(64, 64), residual_scale=0.1, gate=True,
               gate_heads=2, explore_sigma=0.05, actor_lr=3e-6)


class ConstantBase(BasePolicy):
    def act(self, obs):
        return np.array([0.3, -0.2, 0.1, 0.0, 0.0, 0.5, -1.0], np.float32)


def test_model_doc_is_its_own_json_round_trip_and_names_the_shapes():
    doc = model_doc(AgentConfig(**LEARNER), SPEC)
    assert json.loads(json.dumps(doc)) == doc
    assert doc["actor_hidden"] == [64, 64] and doc["num_critics"] == 3 and doc["obs"] == {"state": [[6], "float32"]}
    assert "actor_lr" not in doc and "device" not in doc and "explore_sigma" not in doc
    # only what the networks read counts, whatever spells the dtype
    other = {"state": ((6,), np.dtype(np.float32)), "task_state": ((3,), "float64")}
    assert model_doc(AgentConfig(**LEARNER), other) == doc


def test_actor_adopts_the_learners_sizes_and_loads_its_weights():
    learner = Agent(SPEC, AgentConfig(**LEARNER, seed=1))
    mine = AgentConfig(**ACTOR, warmup_steps=123, explore_sigma=0.3)
    cfg = adopt_model(mine, SPEC, model_doc(learner.cfg, SPEC))
    assert cfg.actor_hidden == (64, 64) and cfg.critic_hidden == (48, 48, 48) and cfg.num_critics == 3
    assert cfg.residual_scale == 0.1 and cfg.gate_heads == 2
    assert cfg.warmup_steps == 123 and cfg.explore_sigma == 0.3 and cfg.seed == mine.seed  # the actor's own
    actor = Agent(SPEC, cfg, ConstantBase())
    actor.load_trainable(learner.trainable_state())
    for k, v in learner.trainable_state().items():
        np.testing.assert_array_equal(actor.trainable_state()[k], v)
    assert model_doc(actor.cfg, SPEC) == model_doc(learner.cfg, SPEC)
    changes = model_changes(mine, cfg)
    assert changes["actor_hidden"] == [[32, 32], [64, 64]] and "warmup_steps" not in changes


@pytest.mark.parametrize("change, match", [
    ({"mode": "rlpd"}, "mode='rlpd'"),
    ({"action_dim": 4}, "action_dim=4"),
    ({"obs": {"state": [[9], "float32"]}}, "observations"),
    ({"encoder": {**model_doc(AgentConfig(), SPEC)["encoder"], "freeze_backbone": True, "backbone": "resnet10"}},
     "frozen backbone"),
    ({"num_critics": 1000, "critic_hidden": [4096, 4096]}, "parameters"),
    ({"actor_hidden": [0]}, "widths"),
    ({"format": "other"}, "hilr-model"),
    ({"gate_heads": 9}, "not a valid agent config"),
    ({"gate": "yes"}, "wrong type"),
    ({"residual_scale": {"a": 1}}, "wrong type"),
    ({"encoder": "resnet18"}, "encoder is not an object"),
    ({"encoder": {**model_doc(AgentConfig(), SPEC)["encoder"], "backbone": 3}}, "not a valid agent config"),
])
def test_refused_differences_say_which_setting(change, match):
    doc = {**model_doc(AgentConfig(**LEARNER), SPEC), **change}
    with pytest.raises(ModelRefused, match=match):
        adopt_model(AgentConfig(**ACTOR), SPEC, doc)


def test_gate_explore_travels_and_a_learner_that_predates_it_means_true():
    learner = AgentConfig(**LEARNER, gate_explore=False)
    mine = AgentConfig(**ACTOR)
    assert adopt_model(mine, SPEC, model_doc(learner, SPEC)).gate_explore is False
    old = model_doc(AgentConfig(**LEARNER), SPEC)
    old.pop("gate_explore", None)  # a learner from before the setting existed
    assert adopt_model(AgentConfig(**ACTOR, gate_explore=False), SPEC, old).gate_explore is True


def test_a_default_document_is_the_same_as_a_learner_that_predates_later_settings():
    doc = model_doc(AgentConfig(**LEARNER), SPEC)
    assert "gate_explore" not in doc  # byte-identical to an older learner's: no rebuild on every weights update
    assert model_doc(adopt_model(AgentConfig(**ACTOR), SPEC, doc), SPEC) == doc
