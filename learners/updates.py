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

No host synchronisation in the update path: the metrics are returned as detached 0-d
tensors (:data:`Metrics`), and :meth:`learners.agent.Agent.update` reads them into floats
only every ``metrics_every`` updates (a ``.item()`` per update stalls a GPU's queue).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from learners.distributed import average_gradients
from policies.critics import forward_heads, polyak_update, random_heads
from policies.residual import compose_action

if TYPE_CHECKING:  # pragma: no cover
    from learners.agent import Agent

Metrics = dict[str, torch.Tensor]  # detached 0-d tensors, read on the host only when logged


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: list[nn.Parameter], clip: float) -> torch.Tensor:
    """Backward + grad-norm clip + step; returns the pre-clip grad norm (0-d tensor, no sync)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    average_gradients(params)  # data-parallel learner (torchrun): every rank steps on the mean gradient
    # foreach: the per-tensor norms in one multi-tensor kernel (the same numbers on CPU, checked)
    norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"), foreach=True)
    optimizer.step()
    return norm.detach()


def _critic_step(agent: "Agent", feat: torch.Tensor, action: torch.Tensor, q_target: torch.Tensor) -> Metrics:
    """Regress every head on the same target: sum over heads of the batch-mean squared error."""
    q = agent.critic(feat, action)  # (E, B)
    critic_loss = ((q - q_target.unsqueeze(0)) ** 2).mean(dim=1).sum()
    grad_norm = _step(agent.critic_optim, critic_loss, agent.critic_params, agent.cfg.grad_clip)
    # float64 division: the same value as the former ``critic_loss.item() / num_critics``
    return {"critic_loss": critic_loss.detach().double() / agent.cfg.num_critics, "q_mean": q.detach().mean(),
            "q_target_mean": q_target.mean(), "critic_grad_norm": grad_norm}


def _target_q(agent: "Agent", next_feat: torch.Tensor, next_action: torch.Tensor) -> torch.Tensor:
    """REDQ: min over ``target_subset`` random target heads, evaluating only those heads."""
    heads = random_heads(agent.cfg.num_critics, agent.cfg.target_subset, agent.torch_rng).to(next_feat.device)
    return forward_heads(agent.critic_target, next_feat, next_action, heads).min(dim=0).values


def _polyak(agent: "Agent") -> None:
    tau = agent.cfg.tau
    polyak_update(agent.critic_target, agent.critic, tau)
    polyak_update(agent.target_encoder, agent.encoder, tau)
    if agent.actor_target is not None:
        polyak_update(agent.actor_target, agent.actor, tau)


def residual_actor_loss(agent: "Agent", feat: torch.Tensor, batch: dict[str, Any], residual: torch.Tensor,
                        extra: torch.Tensor | None = None) -> tuple[torch.Tensor, Metrics]:
    """The residual actor's objective and its diagnostics (shared by TD3 and SAC).

    ``loss = -lambda * mean_B[Qbar(s, base + s*r) - kappa * std_e Q] + w_bc * BC + l2 * |r|^2 (+ extra)``:

    - ``Qbar`` is the ensemble mean; ``kappa = actor_pessimism`` penalises actions the heads
      disagree on (out-of-distribution corrections), ``lambda = 1 / mean|Q|`` when
      ``normalize_q`` (TD3+BC), so ``w_bc`` means the same at any reward scale;
    - BC pulls the residual towards the label ``residual_action`` of *labelled* rows (demos and
      interventions: the implied residual of the human's action), kept only where the critic
      says the human's action beats the current one (``q_filter``, Nair et al. 2018);
    - the critic is frozen during the actor step (no weight gradients computed for it).

    Returns:
        ``(loss, metrics)`` with Q(s, base) vs Q(s, base + residual), the ensemble disagreement on
        both, the residual's magnitude and saturation and the BC filter's keep rate.
    """
    cfg, scale, base = agent.cfg, agent.scale, batch["base_action"]
    agent.critic.requires_grad_(False)
    try:
        q_all = agent.critic(feat, compose_action(base, residual, scale))  # (E, B)
    finally:
        agent.critic.requires_grad_(True)
    q_pi = q_all.mean(0)
    q_std = q_all.std(0) if q_all.shape[0] > 1 else torch.zeros_like(q_pi)
    objective = q_pi - cfg.actor_pessimism * q_std
    lam = 1.0 / objective.abs().mean().detach().clamp_min(1e-3) if cfg.normalize_q else 1.0
    loss = -(lam * objective).mean() + cfg.residual_l2 * (residual**2).sum(-1).mean()
    if extra is not None:
        loss = loss + extra
    metrics: Metrics = {}
    labelled = batch.get("labelled")
    with torch.no_grad():
        q_base_all = agent.critic(feat, base)
        if cfg.bc_weight > 0 and labelled is not None:
            keep = labelled.float()
            if cfg.q_filter:
                keep = keep * (agent.critic(feat, batch["action"]).mean(0) > q_pi.detach()).float()
            metrics["bc_keep_rate"] = keep.sum() / labelled.float().sum().clamp_min(1.0)
    if cfg.bc_weight > 0 and labelled is not None:
        bc = ((residual - batch["residual_action"]) ** 2).sum(-1)
        loss = loss + cfg.bc_weight * (keep * bc).sum() / keep.sum().clamp_min(1.0)
        metrics["bc_loss"] = (keep * bc.detach()).sum() / keep.sum().clamp_min(1.0)
    q_base, q_pi, q_std, residual = q_base_all.mean(0), q_pi.detach(), q_std.detach(), residual.detach()
    metrics.update(
        q_base=q_base.mean(), q_pi=q_pi.mean(), advantage_pi=(q_pi - q_base).mean(),
        q_std_base=q_base_all.std(0).mean() if q_all.shape[0] > 1 else torch.zeros(()),
        q_std_pi=q_std.mean(), residual_abs_mean=residual.abs().mean(),
        residual_saturation=(residual.abs() > 0.95).float().mean())
    return loss, metrics


def td3_residual_update(agent: "Agent", batch: dict[str, Any], update_actor: bool) -> Metrics:
    """One ResFiT / TD3 residual update.

    Args:
        agent: networks, optimisers, config.
        batch: torch batch (``obs``, ``next_obs``, ``action`` executed, ``base_action``,
            ``next_base_action``, ``reward`` n-step, ``discount``, optional ``labelled`` and
            ``residual_action`` for the BC term).
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
        q_next = _target_q(agent, next_feat, compose_action(next_base, next_residual, scale))
        q_target = batch["reward"] + batch["discount"] * q_next

    # 2. critic on the executed action (base + residual, or the human's, after the safety clip)
    metrics = _critic_step(agent, feat, batch["action"], q_target)

    # 3. actor: maximise the (pessimistic) ensemble Q of base + s * pi(s, base), BC to filtered labels
    if update_actor:
        feat_d = feat.detach()
        residual = agent.actor(feat_d, batch["base_action"])
        actor_loss, actor_metrics = residual_actor_loss(agent, feat_d, batch, residual)
        metrics["actor_grad_norm"] = _step(agent.actor_optim, actor_loss, list(agent.actor.parameters()), cfg.grad_clip)
        metrics.update(actor_metrics, actor_loss=actor_loss.detach())

    # 5. Polyak (no temperature in TD3)
    _polyak(agent)
    return metrics


def sac_update(agent: "Agent", batch: dict[str, Any], update_actor: bool) -> Metrics:
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
        q_next = _target_q(agent, next_feat, compose_action(next_base, next_residual, scale))
        if cfg.backup_entropy:
            q_next = q_next - alpha * next_log_prob
        q_target = batch["reward"] + batch["discount"] * q_next

    # 2. critic
    metrics = _critic_step(agent, feat, batch["action"], q_target)

    if update_actor:
        # 3. actor: minimise alpha log pi - Q (+ the residual terms of residual_actor_loss)
        feat_d = feat.detach()
        residual, log_prob = agent.actor.sample(feat_d, batch["base_action"])
        actor_loss, actor_metrics = residual_actor_loss(agent, feat_d, batch, residual, (alpha * log_prob).mean())
        metrics["actor_grad_norm"] = _step(agent.actor_optim, actor_loss, list(agent.actor.parameters()), cfg.grad_clip)

        # 4. temperature: push entropy towards target_entropy
        temperature_loss = -(agent.log_alpha.exp() * (log_prob.detach() + agent.target_entropy)).mean()
        agent.temperature_optim.zero_grad(set_to_none=True)
        temperature_loss.backward()
        average_gradients([agent.log_alpha])
        agent.temperature_optim.step()
        metrics.update(actor_metrics, actor_loss=actor_loss.detach(), entropy=-log_prob.detach().mean(),
                       temperature=agent.log_alpha.detach().exp(), temperature_loss=temperature_loss.detach())

    # 5. Polyak
    _polyak(agent)
    return metrics


UPDATES = {"td3": td3_residual_update, "sac": sac_update}
