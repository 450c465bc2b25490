"""The two off-policy updates, each one function in the order target -> critic -> actor ->
temperature -> Polyak, with names matching the papers.

- :func:`td3_residual_update`: ResFiT's TD3-style residual recipe (deterministic actor,
  target-policy smoothing with clipped noise, REDQ min over a random subset of target
  heads, ensemble-mean actor loss, delayed actor).
- :func:`sac_update`: SAC / RLPD (squashed-Gaussian actor, auto-tuned temperature,
  optional entropy backup, REDQ target). With a zero base and scale 1 it is plain RLPD.

Both take an :class:`learners.agent.Agent` (its networks and optimisers) and a torch batch
from :func:`learners.agent.batch_to_torch`. ``discount`` in the batch already contains
``gamma^m * (1 - terminated)`` of the n-step return, so truncation bootstraps and
termination does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from learners.distributed import average_gradients
from policies.critics import polyak_update, random_subset_min
from policies.residual import compose_action

if TYPE_CHECKING:  # pragma: no cover
    from learners.agent import Agent


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: list[nn.Parameter], clip: float) -> float:
    """Backward + grad-norm clip + step; returns the pre-clip grad norm."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    average_gradients(params)  # data-parallel learner (torchrun): every rank steps on the mean gradient
    norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
    optimizer.step()
    return float(norm)


def _critic_step(agent: "Agent", feat: torch.Tensor, action: torch.Tensor, q_target: torch.Tensor) -> dict[str, float]:
    """Regress every head on the same target: sum over heads of the batch-mean squared error."""
    q = agent.critic(feat, action)  # (E, B)
    critic_loss = ((q - q_target.unsqueeze(0)) ** 2).mean(dim=1).sum()
    grad_norm = _step(agent.critic_optim, critic_loss, agent.critic_params, agent.cfg.grad_clip)
    return {"critic_loss": critic_loss.item() / agent.cfg.num_critics, "q_mean": q.mean().item(),
            "q_target_mean": float(q_target.mean()), "critic_grad_norm": grad_norm}


def _polyak(agent: "Agent") -> None:
    tau = agent.cfg.tau
    polyak_update(agent.critic_target, agent.critic, tau)
    polyak_update(agent.target_encoder, agent.encoder, tau)
    if agent.actor_target is not None:
        polyak_update(agent.actor_target, agent.actor, tau)


def td3_residual_update(agent: "Agent", batch: dict[str, Any], update_actor: bool) -> dict[str, float]:
    """One ResFiT / TD3 residual update.

    Args:
        agent: networks, optimisers, config.
        batch: torch batch (``obs``, ``next_obs``, ``action`` executed, ``base_action``,
            ``next_base_action``, ``reward`` n-step, ``discount``).
        update_actor: also take an actor step (delayed / after the critic warm-up).
    """
    cfg, scale = agent.cfg, agent.scale
    feat = agent.encoder(batch["obs"], augment=cfg.augment)

    # 1. target: y = r + gamma^n (1 - term) * min_{2 random heads} Q'(s', base' + s * clip(pi'(s') + eps))
    with torch.no_grad():
        next_feat = agent.target_encoder(batch["next_obs"], augment=cfg.augment)
        next_base = batch["next_base_action"]
        noise = (torch.randn_like(next_base) * cfg.target_noise).clamp(-cfg.target_noise_clip, cfg.target_noise_clip)
        next_residual = (agent.actor_target(next_feat, next_base) + noise).clamp(-1.0, 1.0)
        next_action = compose_action(next_base, next_residual, scale)
        q_next = random_subset_min(agent.critic_target(next_feat, next_action), cfg.target_subset, agent.torch_rng)
        q_target = batch["reward"] + batch["discount"] * q_next

    # 2. critic on the executed action (base + residual, or the human's)
    metrics = _critic_step(agent, feat, batch["action"], q_target)

    # 3. actor: maximise the ensemble-mean Q of base + s * pi(s, base)
    if update_actor:
        feat_d, base = feat.detach(), batch["base_action"]
        residual = agent.actor(feat_d, base)
        q_pi = agent.critic(feat_d, compose_action(base, residual, scale)).mean(dim=0)
        # optional pull towards the base (residual_l2 = 0 is ResFiT's plain objective)
        actor_loss = -q_pi.mean() + cfg.residual_l2 * (residual**2).sum(-1).mean()
        metrics["actor_grad_norm"] = _step(agent.actor_optim, actor_loss, list(agent.actor.parameters()), cfg.grad_clip)
        metrics.update(actor_loss=actor_loss.item(), residual_abs_mean=residual.abs().mean().item())

    # 5. Polyak (no temperature in TD3)
    _polyak(agent)
    return metrics


def sac_update(agent: "Agent", batch: dict[str, Any], update_actor: bool) -> dict[str, float]:
    """One SAC / RLPD update (residual over ``base_action``; base 0 and scale 1 for RLPD).

    Args:
        agent: networks, optimisers, ``log_alpha``, config.
        batch: torch batch as in :func:`td3_residual_update`.
        update_actor: also take actor and temperature steps.
    """
    cfg, scale = agent.cfg, agent.scale
    alpha = agent.log_alpha.exp().detach()
    feat = agent.encoder(batch["obs"], augment=cfg.augment)

    # 1. target: y = r + gamma^n (1 - term) * (min_subset Q'(s', a') [- alpha log pi(a'|s')])
    with torch.no_grad():
        next_feat = agent.target_encoder(batch["next_obs"], augment=cfg.augment)
        next_base = batch["next_base_action"]
        next_residual, next_log_prob = agent.actor.sample(next_feat, next_base)
        next_action = compose_action(next_base, next_residual, scale)
        q_next = random_subset_min(agent.critic_target(next_feat, next_action), cfg.target_subset, agent.torch_rng)
        if cfg.backup_entropy:
            q_next = q_next - alpha * next_log_prob
        q_target = batch["reward"] + batch["discount"] * q_next

    # 2. critic
    metrics = _critic_step(agent, feat, batch["action"], q_target)

    if update_actor:
        # 3. actor: minimise alpha log pi - mean_e Q_e
        feat_d, base = feat.detach(), batch["base_action"]
        residual, log_prob = agent.actor.sample(feat_d, base)
        q_pi = agent.critic(feat_d, compose_action(base, residual, scale)).mean(dim=0)
        actor_loss = (alpha * log_prob - q_pi).mean() + cfg.residual_l2 * (residual**2).sum(-1).mean()
        metrics["actor_grad_norm"] = _step(agent.actor_optim, actor_loss, list(agent.actor.parameters()), cfg.grad_clip)

        # 4. temperature: push entropy towards target_entropy
        temperature_loss = -(agent.log_alpha.exp() * (log_prob.detach() + agent.target_entropy)).mean()
        agent.temperature_optim.zero_grad(set_to_none=True)
        temperature_loss.backward()
        average_gradients([agent.log_alpha])
        agent.temperature_optim.step()
        metrics.update(actor_loss=actor_loss.item(), entropy=-log_prob.mean().item(),
                       temperature=agent.log_alpha.exp().item(), temperature_loss=temperature_loss.item(),
                       residual_abs_mean=residual.abs().mean().item())

    # 5. Polyak
    _polyak(agent)
    return metrics


UPDATES = {"td3": td3_residual_update, "sac": sac_update}
