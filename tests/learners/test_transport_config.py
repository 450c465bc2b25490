"""The `transport` hydra group: every key documented, parsed into TransportConfig, validated."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from learners.transport import CurveConfig, TransportConfig

GROUP = Path(__file__).resolve().parents[2] / "launch" / "config" / "transport"


def test_default_yaml_matches_the_dataclass_and_comments_every_key():
    text = (GROUP / "default.yaml").read_text()
    values = yaml.safe_load(text)
    assert set(values) == {f.name for f in dataclasses.fields(TransportConfig)}
    assert set(values["curve"]) == {f.name for f in dataclasses.fields(CurveConfig)}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            assert "#" in line, f"key without a comment: {line!r}"
    assert TransportConfig.from_dict(values) == TransportConfig()


@pytest.mark.parametrize("name", ["default", "curve"])
def test_group_composes_through_hydra(name):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(GROUP.parent), version_base="1.3"):
        cfg = compose(config_name="bench", overrides=[f"+transport={name}"])
    tc = TransportConfig.from_dict(OmegaConf.to_container(cfg.transport, resolve=True))
    assert tc.curve.enabled == (name == "curve")
    if name == "curve":
        assert tc.ack_policy == "commit" and tc.max_in_flight == TransportConfig().max_in_flight


@pytest.mark.parametrize("bad", [
    {"ack_policy": "sometimes"}, {"transitions_port": 70000}, {"heartbeat_interval_s": 0},
    {"liveness_timeout_s": 0.1, "heartbeat_interval_s": 0.2}, {"outbox_memory_messages": 0},
    {"max_in_flight": 0},
])
def test_invalid_values_are_refused_by_name(bad):
    with pytest.raises(ValueError) as info:
        TransportConfig(**bad)
    assert "transport." in str(info.value)


def test_unknown_keys_are_refused():
    with pytest.raises(ValueError, match="unknown transport config key"):
        TransportConfig.from_dict({"prot": 1})
