"""``hilr bench <what>``: run one benchmark; its last printed line is a JSON object."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from robot_env.app import hydra_app, to_container

# what -> "module:function(cfg) -> dict". Each module owns its benchmark.
BENCHMARKS = {
    "sim": "robot_env.sim.bench:run",
    "ros": "robot_env.ros.bench:run",
    "transport": "learners.transport.bench:run",
    "learner": "learners.bench_learner:run",
    "memory": "learners.bench_memory:run",
    "learn": "learners.bench_learn:run",
    "reward": "learners.bench_reward:run",
    "actor": "learners.bench_actor:run",
}


@hydra_app("bench")
def main(cfg) -> int:
    """Run the benchmark named by ``cfg.what`` and print its JSON result last."""
    if cfg.what not in BENCHMARKS:
        raise SystemExit(f"unknown benchmark {cfg.what!r}; choose one of {sorted(BENCHMARKS)}")
    module_name, func_name = BENCHMARKS[cfg.what].split(":")
    result = getattr(importlib.import_module(module_name), func_name)(to_container(cfg))
    line = json.dumps(result, sort_keys=True)
    if cfg.out:
        Path(cfg.out).write_text(line + "\n")
    print(line)
    return 0
