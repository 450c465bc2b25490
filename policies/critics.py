"""Batched critic ensembles (one module, batched matmul; no Python loop over critics).

:class:`CriticEnsemble` holds E Q-networks as stacked weights ``(E, in, out)``: one
``torch.baddbmm`` per layer evaluates all heads at once, which is what makes a 10-head
ensemble nearly as cheap as one head on a GPU. Each hidden layer has a per-head LayerNorm.

Also here: Polyak averaging, a REDQ-style random-subset minimum for targets, and the
optional discrete gripper critic (Q over {open, stay, close}, as hil-serl).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class EnsembleLinear(nn.Module):
    """E independent linear layers evaluated with one batched matmul.

    Input ``(E, B, in)`` (or ``(B, in)``, broadcast to every head); output ``(E, B, out)``.
    Each head is initialised like ``nn.Linear`` (Kaiming-uniform, fan-in bias).
    """

    def __init__(self, num_heads: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_heads, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(num_heads, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(E, B, in)`` or ``(B, in)`` -> ``(E, B, out)``."""
        if x.dim() == 2:
            x = x.expand(self.weight.shape[0], *x.shape)  # a view: no copy of x per head
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the feature dim with a separate affine per head; ``(E, B, D)``."""

    def __init__(self, num_heads: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_heads, 1, dim))
        self.bias = nn.Parameter(torch.zeros(num_heads, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised ``(E, B, D)``."""
        return F.layer_norm(x, x.shape[-1:]) * self.weight + self.bias


class CriticEnsemble(nn.Module):
    """E Q-heads ``Q_e(feat, action)`` as one batched MLP with LayerNorm.

    Args:
        feature_dim: observation feature size F.
        action_dim: action size A.
        num_critics: ensemble size E (10 in ResFiT/RLPD, 2 in hil-serl).
        hidden: hidden widths (ResFiT uses 1024 x 3 on GPU; 256 x 2 is CPU-sized).
        layer_norm: per-head LayerNorm after each hidden layer.
        out_dim: outputs per head (1 for Q(s, a); 3 for the discrete gripper critic).
    """

    def __init__(self, feature_dim: int, action_dim: int, num_critics: int = 10,
                 hidden: tuple[int, ...] = (256, 256), layer_norm: bool = True, out_dim: int = 1) -> None:
        super().__init__()
        self.num_critics = num_critics
        self.out_dim = out_dim
        layers: list[nn.Module] = []
        d = feature_dim + action_dim
        for h in hidden:
            layers.append(EnsembleLinear(num_critics, d, h))
            if layer_norm:
                layers.append(EnsembleLayerNorm(num_critics, h))
            layers.append(nn.ReLU())
            d = h
        layers.append(EnsembleLinear(num_critics, d, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, feat: torch.Tensor, action: torch.Tensor | None = None) -> torch.Tensor:
        """Q-values of every head.

        Args:
            feat: ``(B, F)`` features (shared by all heads).
            action: ``(B, A)`` executed actions, or None for a state-only (gripper) critic.

        Returns:
            ``(E, B)`` when ``out_dim == 1``, else ``(E, B, out_dim)``.
        """
        x = feat if action is None else torch.cat([feat, action], dim=-1)
        q = self.net(x)
        return q.squeeze(-1) if self.out_dim == 1 else q


def forward_heads(critic: "CriticEnsemble", feat: torch.Tensor, action: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
    """Q of only the ``heads`` (long ``(K,)``) of ``critic``: ``(K, B)``.

    The REDQ target needs 2 of E heads; evaluating just those costs 2/E of the full forward.
    """
    x = torch.cat([feat, action], dim=-1)
    if isinstance(critic, NaiveCriticList):  # the benchmark's per-critic loop baseline
        return torch.stack([critic.critics[i](x).squeeze(-1) for i in heads.tolist()], dim=0)
    x = x.expand(len(heads), *x.shape)
    for m in critic.net:
        if isinstance(m, EnsembleLinear):
            x = torch.baddbmm(m.bias.index_select(0, heads), x, m.weight.index_select(0, heads))
        elif isinstance(m, EnsembleLayerNorm):
            x = F.layer_norm(x, x.shape[-1:]) * m.weight.index_select(0, heads) + m.bias.index_select(0, heads)
        else:
            x = m(x)
    return x.squeeze(-1)


def random_heads(num: int, subset: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``subset`` distinct random head indices out of ``num`` (all heads when ``subset >= num``)."""
    if subset >= num:
        return torch.arange(num)
    return torch.randperm(num, generator=generator)[:subset]


def random_subset_min(q: torch.Tensor, subset: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """REDQ target: the minimum over ``subset`` randomly chosen heads of ``q`` ``(E, B)`` -> ``(B,)``.

    One random subset per call (as in REDQ/RLPD), shared by the whole batch.
    """
    return q.index_select(0, random_heads(q.shape[0], subset, generator).to(q.device)).min(dim=0).values


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) * target + tau * source`` for all parameters (buffers copied)."""
    t_params = [p for p in target.parameters()]
    s_params = [p for p in source.parameters()]
    if t_params:
        torch._foreach_lerp_(t_params, s_params, tau)
    for tb, sb in zip(target.buffers(), source.buffers()):
        tb.copy_(sb)


class NaiveCriticList(nn.Module):
    """Reference implementation: E separate ``nn.Sequential`` critics in a Python loop.

    Used only by ``hilr bench learner`` as the baseline the batched ensemble is compared to.
    Same shapes and semantics as :class:`CriticEnsemble`.
    """

    def __init__(self, feature_dim: int, action_dim: int, num_critics: int = 10,
                 hidden: tuple[int, ...] = (256, 256), layer_norm: bool = True) -> None:
        super().__init__()
        from policies.encoders import mlp

        self.num_critics = num_critics
        self.critics = nn.ModuleList(
            [mlp(feature_dim + action_dim, list(hidden), 1, layer_norm) for _ in range(num_critics)]
        )

    def forward(self, feat: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``(E, B)`` Q-values, one critic at a time."""
        x = torch.cat([feat, action], dim=-1)
        return torch.stack([c(x).squeeze(-1) for c in self.critics], dim=0)


GRIPPER_ACTIONS = (-1.0, 0.0, 1.0)  # open, stay, close (gripper command deltas)


class GripperCritic(nn.Module):
    """Discrete gripper critic (hil-serl): Q(s, g) for g in {open, stay, close}.

    Trained DQN-style (double-Q target from a target copy) beside the continuous critic;
    the continuous actor then controls only the first A-1 dimensions.

    Args:
        feature_dim: observation feature size F.
        num_critics: small ensemble (2) for a min-target.
        hidden: hidden widths.
    """

    def __init__(self, feature_dim: int, num_critics: int = 2, hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        self.q = CriticEnsemble(feature_dim, 0, num_critics, hidden, True, out_dim=len(GRIPPER_ACTIONS))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """``(E, B, 3)`` Q-values over {open, stay, close}."""
        return self.q(feat)

    def greedy(self, feat: torch.Tensor) -> torch.Tensor:
        """Index (0 open, 1 stay, 2 close) maximising the ensemble-mean Q, ``(B,)`` long."""
        return self(feat).mean(0).argmax(-1)


def gripper_action_to_index(gripper: torch.Tensor, previous: torch.Tensor, deadband: float = 0.5) -> torch.Tensor:
    """Label an absolute gripper command (-1 open, +1 closed) as open/stay/close against the previous one."""
    delta = gripper - previous
    idx = torch.ones_like(delta, dtype=torch.long)
    idx[delta < -deadband] = 0
    idx[delta > deadband] = 2
    return idx


def gripper_td_loss(critic: GripperCritic, target: GripperCritic, feat: torch.Tensor, next_feat: torch.Tensor,
                    index: torch.Tensor, reward: torch.Tensor, discount: torch.Tensor) -> torch.Tensor:
    """DQN loss of the gripper critic with a double-Q target (online argmax, target min over heads)."""
    with torch.no_grad():
        a_next = critic.greedy(next_feat)
        q_next = target(next_feat).gather(-1, a_next.view(1, -1, 1).expand(target.q.num_critics, -1, 1)).squeeze(-1)
        y = reward + discount * q_next.min(0).values
    q = critic(feat).gather(-1, index.view(1, -1, 1).expand(critic.q.num_critics, -1, 1)).squeeze(-1)
    return F.mse_loss(q, y.expand_as(q))
