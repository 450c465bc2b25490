"""One rank of the data-parallel learner test (started by torch.distributed.run)."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch
import torch.distributed as dist

from learners import distributed
from learners.agent import Agent
from learners.builders import agent_config
from learners.replay import ReplayBuffer


def main(out: str) -> None:
    torch.set_num_threads(1)
    distributed.init_from_env("cpu")
    cfg = agent_config({"mode": "rlpd", "algo": "sac", "num_critics": 4, "critic_hidden": [32, 32],
                        "actor_hidden": [32, 32], "batch_size": 32, "critic_warmup_updates": 0,
                        "actor_delay": 1, "seed": 0})
    spec = {"state": ((5,), "float32")}
    agent = Agent(spec, cfg)
    rng = np.random.default_rng(123)  # the same fixed data on every rank; only rank 0 samples it
    buf = ReplayBuffer(spec, 2000, n_step=1, seed=0)
    for t in range(1500):
        s = rng.normal(size=5).astype(np.float32)
        a = rng.uniform(-1, 1, 7).astype(np.float32)
        buf.add({"obs": {"state": s}, "next_obs": {"state": s + 0.1}, "action": a, "reward": float(a[0] > 0),
                 "terminated": t % 50 == 49, "truncated": False})
    global_bs = cfg.batch_size * distributed.world_size()
    updater = distributed.ShardedUpdater(agent, buf.sample(global_bs))
    losses, n = [], 0
    if distributed.rank() == 0:
        for _ in range(120):
            losses.append(updater.update(buf.sample(global_bs))["critic_loss"])
        updater.stop()
        n = 120
    else:
        n = updater.follow()
    checksum = torch.cat([p.detach().reshape(-1) for p in list(agent.critic.parameters()) + list(agent.actor.parameters())])
    gathered = [torch.zeros_like(checksum) for _ in range(distributed.world_size())]
    dist.all_gather(gathered, checksum)
    same = all(torch.equal(gathered[0], g) for g in gathered)
    if distributed.rank() == 0:
        with open(out, "w") as f:
            json.dump({"world": distributed.world_size(), "updates": n, "ranks_identical": same,
                       "loss_first": float(np.mean(losses[:10])), "loss_last": float(np.mean(losses[-10:])),
                       "log_alpha": float(agent.log_alpha.detach())}, f)
    distributed.shutdown()  # barrier, then destroy: no rank tears gloo down under another


if __name__ == "__main__":
    main(sys.argv[1])
    # Leave without C++ static destructors: on a loaded machine a libtorch thread still
    # joinable at interpreter exit aborted rank 1 ("terminate called without an active
    # exception") in about half the runs, after the work and the group teardown were done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

