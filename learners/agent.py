"""The in-process Agent used by the actor and learner processes.

One config switch picks the learning mode:

- ``bc``: the base policy acts alone; nothing is learned online.
- ``residual`` (default): frozen base + residual actor learned off-policy (``algo=td3``
  is ResFiT's recipe, ``algo=sac`` the SAC variant).
- ``rlpd``: no base (zero), ``scale = 1``: SAC from scratch with demos (hil-serl's RLPD).

Actor side: ``act(obs, deterministic, warmup) -> (action, base_action, residual_action)``
and ``load_trainable(state)`` with the learner's latest weights. Learner side:
``update(batch) -> metrics`` and ``trainable_state()`` (only what the actor needs: residual
actor + trainable encoder parts, never a frozen backbone or the base policy).
Checkpoints: ``save(path)`` / ``load(path)`` with optimisers, ``log_alpha`` and counters.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from learners.updates import UPDATES
from policies.base import BasePolicy, ZeroBasePolicy
from policies.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from policies.critics import CriticEnsemble, forward_heads
from policies.encoders import EncoderConfig, ObservationEncoder, ObsSpec, obs_to_tensors
from policies.residual import ACTORS, compose_action

MODES = ("bc", "residual", "rlpd")
CRITIC_METRICS = ("critic_loss", "q_mean", "q_target_mean", "critic_grad_norm")

log = logging.getLogger(__name__)


@dataclasses.dataclass
class AgentConfig:
    """Learner/agent hyper-parameters (the ``learner`` config group; see its yaml comments)."""

    mode: str = "residual"
    algo: str = "td3"
    residual_scale: float | Sequence[float] = 0.1
    encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
    actor_hidden: tuple[int, ...] = (256, 256)
    critic_hidden: tuple[int, ...] = (256, 256)
    num_critics: int = 10
    target_subset: int = 2
    layer_norm: bool = True
    gamma: float = 0.99
    n_step: int = 3
    tau: float = 0.005
    actor_lr: float = 3e-6
    critic_lr: float = 1e-4
    temperature_lr: float = 3e-4
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    actor_delay: int = 2
    critic_warmup_updates: int = 1000
    warmup_steps: int = 1000
    warmup_noise: float = 1.0
    explore_sigma: float = 0.05
    residual_l2: float = 0.0
    target_noise: float = 0.2
    target_noise_clip: float = 0.3
    init_temperature: float = 0.01
    target_entropy: float | None = None
    backup_entropy: bool = False
    init_std: float = 0.3
    batch_size: int = 256
    utd: int = 4
    demo_ratio: float = 0.5
    buffer_capacity: int = 200_000
    demo_capacity: int = 50_000
    augment: bool = True
    action_dim: int = 7
    device: str = "cpu"
    seed: int = 0
    normalize_state: bool = True
    normalizer_updates: int = 100
    explore_hold: int = 1
    bc_weight: float = 0.0
    q_filter: bool = True
    actor_pessimism: float = 0.0
    normalize_q: bool = False
    gate: bool = False
    gate_explore: bool = True
    gate_kappa: float = 1.0
    gate_heads: int = 0
    metrics_every: int = 1
    cache_features: bool = False
    features_from: str = "learner"
    compile: bool = False
    compile_backend: str = "inductor"

    def __post_init__(self) -> None:
        if isinstance(self.encoder, Mapping):
            self.encoder = EncoderConfig(**self.encoder)
        self.actor_hidden = tuple(int(h) for h in self.actor_hidden)
        self.critic_hidden = tuple(int(h) for h in self.critic_hidden)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.algo not in UPDATES:
            raise ValueError(f"algo must be one of {sorted(UPDATES)}, got {self.algo!r}")
        if not 1 <= self.target_subset <= self.num_critics:
            raise ValueError("need 1 <= target_subset <= num_critics")
        if self.n_step < 1 or not 0 < self.gamma <= 1 or not 0 < self.tau <= 1:
            raise ValueError("need n_step >= 1, 0 < gamma <= 1, 0 < tau <= 1")
        if not 0.0 <= self.demo_ratio <= 1.0:
            raise ValueError("demo_ratio must be in [0, 1]")
        if self.actor_delay < 1 or self.utd < 1:
            raise ValueError("actor_delay and utd must be >= 1")
        if self.explore_hold < 1 or self.normalizer_updates < 0:
            raise ValueError("explore_hold must be >= 1 and normalizer_updates >= 0")
        if self.bc_weight < 0 or self.actor_pessimism < 0 or self.gate_kappa < 0 or self.residual_l2 < 0:
            raise ValueError("bc_weight, actor_pessimism, gate_kappa and residual_l2 must be >= 0")
        if not 0 <= self.gate_heads <= self.num_critics:
            raise ValueError("need 0 <= gate_heads <= num_critics (0 = all heads)")
        if self.metrics_every < 1:
            raise ValueError("metrics_every must be >= 1")
        if self.cache_features and not self.encoder.freeze_backbone:
            raise ValueError("cache_features needs encoder.freeze_backbone=true (a trained backbone's features go stale)")
        if self.features_from not in ("learner", "actor"):
            raise ValueError(f"features_from must be learner or actor, got {self.features_from!r}")
        if self.features_from == "actor" and not self.cache_features:
            raise ValueError("features_from=actor needs cache_features=true (the learner stores the actor's features)")
        self.device = resolve_device(self.device)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "AgentConfig":
        """Build from a plain mapping / hydra node (the ``learner`` group), rejecting unknown keys."""
        from robot_env.app import to_container
        from robot_env.registry import config_from_dict

        return config_from_dict(cls, to_container(values))

    def scale_array(self) -> np.ndarray:
        """Residual scale per action dim ``(A,)``: 1 in rlpd mode (the residual is the action)."""
        if self.mode == "rlpd":
            return np.ones(self.action_dim, np.float32)
        s = np.broadcast_to(np.asarray(self.residual_scale, np.float32), (self.action_dim,)).copy()
        if np.any(s <= 0):
            raise ValueError(f"residual_scale must be > 0, got {s}")
        return s


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``; a CUDA device without a GPU is
    an error with a clear message instead of a crash at the first tensor."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"learner.device={device} but no CUDA GPU is visible here; use learner.device=auto or cpu")
    return str(device)


def check_base_fits(base_policy: Any, spec: Mapping[str, Any]) -> None:
    """Refuse a base policy trained on another observation layout, naming the likely cause.

    A BC base records its layout (``model.spec``); a state of another size almost always means
    ``privileged_state`` or ``camera`` differ from training (e.g. trained with
    ``privileged_state=true camera=none``, run without).
    """
    model_spec = getattr(getattr(base_policy, "model", None), "spec", None)
    if not model_spec:
        return
    for key, (shape, _) in model_spec.items():
        got = spec.get(key)
        if got is None or tuple(got[0]) != tuple(shape):
            raise ValueError(
                f"the base policy was trained on obs[{key!r}] of shape {tuple(shape)}, this env gives "
                f"{None if got is None else tuple(got[0])}: run with the privileged_state / camera settings "
                f"it was trained with (its observation keys: {sorted(model_spec)})")


def batch_to_torch(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """numpy batch from a replay buffer -> tensors on ``device`` (images stay uint8, bools -> float)."""
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, Mapping):
            out[k] = obs_to_tensors(v, device, batched=True)
        else:
            a = np.asarray(v)
            t = torch.as_tensor(a, device=device)
            out[k] = t.float() if a.dtype in (np.bool_, np.float64) else t
    return out


def adopt_base_backbone(encoder: ObservationEncoder, base: Any) -> None:
    """``encoder.backbone_from=base``: each camera's backbone becomes the BC base policy's.

    Raises:
        ValueError: no base policy, or one without an image encoder (e.g. TorchScript).
    """
    source = getattr(getattr(base, "model", None), "encoder", None)
    if source is None:
        raise ValueError("encoder.backbone_from=base needs the BC base policy with cameras (base_policy=<bc .safetensors>"
                         f"{'' if base is None else f'; got a {type(base).__name__} without an image encoder'})")
    encoder.load_backbones(source)


class Agent:
    """Residual (or RLPD) agent: encoder, actor, critic ensemble, targets, optimisers.

    Args:
        spec: observation layout (from the env's observation space, never an env instance).
        cfg: hyper-parameters.
        base_policy: the frozen base (actor side). None -> zeros (learner side never needs it:
            base actions travel in the transitions).
        backbone_source: the BC base whose camera backbones ``encoder.backbone_from=base``
            copies (the learner's; defaults to ``base_policy``).
    """

    def __init__(self, spec: ObsSpec, cfg: AgentConfig, base_policy: BasePolicy | None = None,
                 backbone_source: BasePolicy | None = None) -> None:
        self.spec, self.cfg = dict(spec), cfg
        check_base_fits(base_policy, self.spec)
        self.device = torch.device(cfg.device)
        self.base = base_policy if (base_policy is not None and cfg.mode != "rlpd") else ZeroBasePolicy(cfg.action_dim)
        self.rng = np.random.default_rng(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.torch_rng = torch.Generator().manual_seed(cfg.seed)
        self.scale_np = cfg.scale_array()
        self.scale = torch.as_tensor(self.scale_np, device=self.device)
        a = cfg.action_dim
        self.encoder = ObservationEncoder(spec, cfg.encoder, normalize_state=cfg.normalize_state).to(self.device)
        if cfg.encoder.backbone_from == "base" and self.encoder.image_keys:
            adopt_base_backbone(self.encoder, backbone_source or base_policy)
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        actor_cls = ACTORS[cfg.algo]
        kw = {"init_std": cfg.init_std} if cfg.algo == "sac" else {}
        self.actor = actor_cls(self.encoder.out_dim, a, cfg.actor_hidden, cfg.layer_norm, **kw).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False) if cfg.algo == "td3" else None
        self.critic = CriticEnsemble(self.encoder.out_dim, a, cfg.num_critics, cfg.critic_hidden, cfg.layer_norm).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.critic_params = list(self.critic.parameters()) + [p for p in self.encoder.parameters() if p.requires_grad]
        # foreach: one multi-tensor kernel per Adam op instead of one per parameter; on CPU the
        # same numbers bit for bit as the per-tensor loop (checked), unlike fused=True
        self.critic_optim = torch.optim.AdamW(self.critic_params, lr=cfg.critic_lr, weight_decay=cfg.weight_decay,
                                              foreach=True)
        self.actor_optim = torch.optim.AdamW(self.actor.parameters(), lr=cfg.actor_lr, weight_decay=cfg.weight_decay,
                                             foreach=True)
        self.log_alpha = torch.tensor(float(np.log(cfg.init_temperature)), device=self.device, requires_grad=True)
        self.temperature_optim = torch.optim.Adam([self.log_alpha], lr=cfg.temperature_lr)
        self.target_entropy = cfg.target_entropy if cfg.target_entropy is not None else -a / 2.0
        self.update_fn = UPDATES[cfg.algo]
        self.num_updates = 0  # critic updates
        self.num_actor_updates = 0
        self.normalizer_samples = 0  # states seen by the running state statistics (frozen after normalizer_updates)
        self._norm_sum = np.zeros(self.encoder.state_dim, np.float64)
        self._norm_sumsq = np.zeros(self.encoder.state_dim, np.float64)
        self._held_noise: np.ndarray | None = None  # exploration noise held for explore_hold steps
        self._held_steps = 0
        self.gate_open: bool | None = None  # did the last act() use the residual (gate on)?
        self.gate_stats = {"open": 0, "closed": 0}
        self._actor_metrics: dict[str, torch.Tensor] = {}  # the last actor update's, still on the device
        self._read_metrics: dict[str, float] = {}  # the metrics last read to the host
        self.compiled: bool | None = None  # None until the first update tries cfg.compile

    # ---------------------------------------------------------------- actor side
    @property
    def learns(self) -> bool:
        """False in ``bc`` mode (nothing to train online)."""
        return self.cfg.mode != "bc"

    def reset(self) -> None:
        """Start of an episode: resets the base policy's chunk state and the held exploration noise."""
        self.base.reset()
        self._held_noise, self._held_steps = None, 0

    def _noise(self, scale: float, uniform: bool) -> np.ndarray:
        """Exploration noise ``(A,)``, resampled every ``explore_hold`` steps (temporally correlated:
        a held offset moves the arm by centimetres, i.i.d. noise by fractions of a millimetre)."""
        if self._held_noise is None or self._held_steps >= self.cfg.explore_hold:
            a = self.cfg.action_dim
            raw = self.rng.uniform(-1, 1, a) if uniform else self.rng.normal(0.0, 1.0, a)
            self._held_noise, self._held_steps = (scale * raw).astype(np.float32), 0
        self._held_steps += 1
        return self._held_noise

    @torch.no_grad()
    def q_values(self, obs: Mapping[str, np.ndarray], actions: np.ndarray) -> np.ndarray:
        """Every critic head's Q of (one observation, each of ``actions`` ``(K, A)``): ``(E, K)``."""
        self.encoder.eval()
        feat = self.encoder(obs_to_tensors({k: obs[k] for k in self.spec}, self.device))
        acts = torch.as_tensor(np.asarray(actions, np.float32), device=self.device)
        return self.critic(feat.expand(len(acts), -1), acts).cpu().numpy()

    def _gate_head_ids(self) -> torch.Tensor:
        """The critic heads the gate asks (the first ``gate_heads``; all when 0): only those travel
        to the actor, which keeps the weights message small for GPU-sized critics."""
        k = self.cfg.gate_heads or self.cfg.num_critics
        return torch.arange(k, device=self.device)

    def _gate(self, feat: torch.Tensor, base_t: torch.Tensor, residual_t: torch.Tensor) -> bool:
        """True when the critic ensemble's lower confidence bound says base + residual beats the base:
        ``mean_e(A_e) - gate_kappa * std_e(A_e) > 0`` with ``A_e = Q_e(s, base + s*r) - Q_e(s, base)``."""
        acts = torch.cat([compose_action(base_t, residual_t, self.scale), base_t], 0)
        q = forward_heads(self.critic, feat.expand(2, -1), acts, self._gate_head_ids())  # (K, 2)
        adv = q[:, 0] - q[:, 1]
        std = adv.std() if adv.numel() > 1 else torch.zeros(())
        return bool(adv.mean() - self.cfg.gate_kappa * std > 0)

    @torch.no_grad()
    def act(self, obs: Mapping[str, np.ndarray], deterministic: bool = False,
            warmup: bool = False, features: Mapping[str, np.ndarray] | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Choose an action for one (unbatched) observation.

        Args:
            obs: ``state`` ``(D,)`` float32 and camera images ``(H, W, 3)`` uint8.
            deterministic: evaluation: the residual's mean, no noise.
            warmup: collection warm-up: base + uniform noise ``warmup_noise * U(-1, 1)``
                residual (ResFiT), or uniform random actions in rlpd mode.
            features: ``obs`` with each camera replaced by its frozen-backbone features
                (:meth:`learners.feature_cache.FeatureCache.frame`, ``learner.features_from=actor``):
                the residual and the gate read these, so the backbone is not run again; the
                base policy still reads ``obs``.

        Returns:
            ``(action, base_action, residual_action)``, each ``(A,)`` float32; ``action =
            clip(base + scale * residual, -1, 1)`` is what to execute.
        """
        base = np.asarray(self.base.act(obs), np.float32).reshape(self.cfg.action_dim)
        if self.cfg.mode == "bc":
            return base.copy(), base, np.zeros_like(base)
        self.gate_open = None
        if warmup and not deterministic:
            residual = self._noise(self.cfg.warmup_noise, uniform=True).copy()
        else:
            self.encoder.eval()
            src = obs if features is None else features
            feat = self.encoder(obs_to_tensors({k: src[k] for k in self.spec}, self.device))
            base_t = torch.as_tensor(base, device=self.device).unsqueeze(0)
            if self.cfg.algo == "sac" and not deterministic:
                residual_t = self.actor.explore(feat, base_t)
            else:
                residual_t = self.actor(feat, base_t)
            if self.cfg.gate and self.cfg.mode == "residual":  # rlpd has no base to fall back to
                # gate_explore=false gates only deterministic acting (evaluation, deployment), so
                # the critic sees the residual's own actions in training
                if deterministic or self.cfg.gate_explore:
                    self.gate_open = self._gate(feat, base_t, residual_t)
                    self.gate_stats["open" if self.gate_open else "closed"] += 1
                    if not self.gate_open:
                        residual_t = torch.zeros_like(residual_t)
                else:
                    self.gate_open = True  # the residual runs ungated (not a gate decision: gate_stats stays)
            residual = residual_t[0].cpu().numpy().astype(np.float32)
            if self.cfg.algo == "td3" and not deterministic:
                residual = residual + self._noise(self.cfg.explore_sigma, uniform=False)
        residual = np.clip(residual, -1.0, 1.0)
        action = np.clip(base + self.scale_np * residual, -1.0, 1.0).astype(np.float32)
        return action, base, residual

    # ---------------------------------------------------------------- learner side
    def update(self, batch: Mapping[str, Any]) -> dict[str, float]:
        """One critic update (+ actor/temperature every ``actor_delay`` updates after the critic warm-up).

        Args:
            batch: a numpy batch from :meth:`learners.replay.ReplayBuffer.sample` /
                :meth:`learners.replay.MixedReplay.sample` (or an already-converted torch batch).

        Returns:
            Scalar metrics (``critic_loss``, ``q_mean``, ``actor_loss`` when the actor moved, ...)
            as read on the last update whose number is a multiple of ``metrics_every`` (every
            update by default): the update path itself never waits for the device.
        """
        if not self.learns:
            return {}
        self.encoder.train()
        tb = batch_to_torch(batch, self.device) if isinstance(batch.get("reward"), np.ndarray) else dict(batch)
        if self.compiled is None:
            self.compiled = self._compile(tb) if self.cfg.compile else False
        if self.encoder.normalize_state and self.num_updates < self.cfg.normalizer_updates:
            self._accumulate_state_stats(tb)
        self.num_updates += 1
        update_actor = (self.num_updates > self.cfg.critic_warmup_updates
                        and self.num_updates % self.cfg.actor_delay == 0)
        metrics = self.update_fn(self, tb, update_actor)
        self.num_actor_updates += int(update_actor)
        if update_actor:  # keep the actor's diagnostics visible on critic-only updates too
            self._actor_metrics = {k: v for k, v in metrics.items() if k not in CRITIC_METRICS}
        if self.num_updates % self.cfg.metrics_every == 0 or not self._read_metrics:
            # the one host sync: every metrics_every updates (and the first)
            self._read_metrics = {k: float(v) for k, v in {**self._actor_metrics, **metrics}.items()}
        metrics = dict(self._read_metrics)
        metrics.update(num_updates=self.num_updates, num_actor_updates=self.num_actor_updates)
        gate = self.gate_stats["open"] + self.gate_stats["closed"]
        if gate:
            metrics["gate_open_rate"] = self.gate_stats["open"] / gate
        return metrics

    def _compile(self, tb: Mapping[str, Any]) -> bool:
        """``torch.compile`` the critic ensemble and the residual actor in place (learner side
        only: the actor process never compiles), then run each compiled graph the update
        uses once on zeros, so that a failure (no C++ compiler, an unsupported op, a bad
        backend) falls back to eager here, with a warning, and never mid-update.

        The probes draw no random numbers and leave no gradients, so a compiled learner
        sees the same random stream as an eager one. Returns True when compiled.
        """
        modules = (self.critic, self.actor)
        batch = int(tb["reward"].shape[0])
        feat = torch.zeros(batch, self.encoder.out_dim, device=self.device)
        action = torch.zeros(batch, self.cfg.action_dim, device=self.device)
        try:
            for m in modules:
                m.compile(backend=self.cfg.compile_backend)
            self.critic(feat, action).sum().backward()  # critic step
            with torch.no_grad():  # Q(s, base) diagnostics and the gate
                self.critic(feat, action)
                self.actor(feat, action)
            self.critic.requires_grad_(False)  # actor step: dQ/da through the frozen critic
            try:
                self.critic(feat, self.actor(feat, action)).sum().backward()
            finally:
                self.critic.requires_grad_(True)
        except Exception as exc:  # noqa: BLE001 - any compile failure: eager is always correct
            for m in modules:
                m._compiled_call_impl = None  # what nn.Module.compile set: back to the eager forward
            msg = f"torch.compile(backend={self.cfg.compile_backend!r}) failed, running eager: {type(exc).__name__}: {exc}"
            warnings.warn(msg.splitlines()[0], RuntimeWarning, stacklevel=3)
            log.warning("%s", msg.splitlines()[0])
            return False
        finally:
            for m in modules:
                m.zero_grad(set_to_none=True)
        log.info("learner networks compiled (torch.compile backend=%s)", self.cfg.compile_backend)
        return True

    @torch.no_grad()
    def _accumulate_state_stats(self, tb: Mapping[str, Any]) -> None:
        """Running mean/std of ``state`` over the first ``normalizer_updates`` batches (then frozen),
        written into the encoder and its target so the actor and critic see standardised inputs."""
        states = torch.cat([tb["obs"]["state"], tb["next_obs"]["state"]]).double().reshape(-1, self.encoder.state_dim)
        self._norm_sum += states.sum(0).cpu().numpy()
        self._norm_sumsq += (states**2).sum(0).cpu().numpy()
        self.normalizer_samples += int(states.shape[0])
        mean = self._norm_sum / self.normalizer_samples
        std = np.sqrt(np.maximum(self._norm_sumsq / self.normalizer_samples - mean**2, 0.0))
        for enc in (self.encoder, self.target_encoder):
            enc.set_state_stats(mean, std)

    def _trainable_encoder_keys(self) -> list[str]:
        frozen = self.cfg.encoder.freeze_backbone
        return [k for k in self.encoder.state_dict() if not (frozen and ".backbone." in k)]

    def trainable_state(self) -> dict[str, np.ndarray]:
        """What the actor process needs to act: the residual actor and the trainable encoder
        parts (never a frozen backbone or the base policy), as flat numpy arrays."""
        out = {f"actor.{k}": v.detach().cpu().numpy().copy() for k, v in self.actor.state_dict().items()}
        enc = self.encoder.state_dict()
        out.update({f"encoder.{k}": enc[k].detach().cpu().numpy().copy() for k in self._trainable_encoder_keys()})
        if self.cfg.gate and self.cfg.mode == "residual":  # the actor's gate asks the critic whether the residual beats the base
            k = self.cfg.gate_heads or self.cfg.num_critics  # every critic tensor is (E, ...)
            out.update({f"critic.{n}": v[:k].detach().cpu().numpy().copy() for n, v in self.critic.state_dict().items()})
        return out

    def load_trainable(self, state: Mapping[str, np.ndarray]) -> None:
        """Load :meth:`trainable_state` from the learner (checks every key and shape)."""
        mine = self.trainable_state()
        expected, got = set(mine), set(state)
        if got != expected:
            raise KeyError(f"trainable state mismatch: missing={sorted(expected - got)[:5]} unexpected={sorted(got - expected)[:5]}")
        for name, ref in mine.items():
            shape = tuple(np.shape(state[name]))
            if shape != ref.shape:
                raise ValueError(f"weights {name} have shape {shape}, this actor's model has {ref.shape}: "
                                 "the learner and actor use different network sizes (learner=... must match)")
        parts: dict[str, dict[str, torch.Tensor]] = {"actor": {}, "encoder": {}, "critic": {}}
        for name, v in state.items():
            t = torch.as_tensor(np.asarray(v))
            if not torch.isfinite(t.float()).all():
                raise ValueError(f"trainable state {name} holds non-finite values; refusing to load")
            prefix, _, key = name.partition(".")
            parts[prefix][key] = t
        self.actor.load_state_dict(parts["actor"])
        self.encoder.load_state_dict(parts["encoder"], strict=False)
        if parts["critic"]:  # the gate's heads: the first gate_heads of the ensemble
            with torch.no_grad():
                own = self.critic.state_dict()
                for n, t in parts["critic"].items():
                    own[n][: t.shape[0]].copy_(t)

    def state_dict(self) -> dict[str, Any]:
        """Full learner state: all networks, targets, optimisers, ``log_alpha``, counters."""
        state = {
            "encoder": self.encoder.state_dict(), "target_encoder": self.target_encoder.state_dict(),
            "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(), "log_alpha": self.log_alpha.detach(),
            "critic_optim": self.critic_optim.state_dict(), "actor_optim": self.actor_optim.state_dict(),
            "temperature_optim": self.temperature_optim.state_dict(),
            "num_updates": self.num_updates, "num_actor_updates": self.num_actor_updates,
            "normalizer": torch.as_tensor(np.concatenate([[self.normalizer_samples], self._norm_sum, self._norm_sumsq])),
        }
        if self.actor_target is not None:
            state["actor_target"] = self.actor_target.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        for name in ("encoder", "target_encoder", "actor", "critic", "critic_target", "actor_target"):
            module = getattr(self, name)
            if module is not None:
                module.load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(torch.as_tensor(state["log_alpha"]))
        self.critic_optim.load_state_dict(state["critic_optim"])
        self.actor_optim.load_state_dict(state["actor_optim"])
        self.temperature_optim.load_state_dict(state["temperature_optim"])
        self.num_updates, self.num_actor_updates = int(state["num_updates"]), int(state["num_actor_updates"])
        if "normalizer" in state:  # checkpoints from before the state normaliser have none
            norm = np.asarray(torch.as_tensor(state["normalizer"]).cpu().numpy(), np.float64)
            d = self.encoder.state_dim
            self.normalizer_samples = int(norm[0])
            self._norm_sum, self._norm_sumsq = norm[1:1 + d].copy(), norm[1 + d:1 + 2 * d].copy()

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Atomic safetensors checkpoint of :meth:`state_dict` with the config and spec as JSON."""
        meta = {"kind": "hilr-agent", "version": 1, "config": dataclasses.asdict(self.cfg),
                "spec": {k: [list(s), d] for k, (s, d) in self.spec.items()}, **(extra or {})}
        return save_checkpoint(path, self.state_dict(), meta)

    def load(self, path: str | Path) -> dict[str, Any]:
        """Restore a checkpoint written by :meth:`save`; returns its metadata."""
        state, meta = load_checkpoint(path, self.device)
        if meta.get("kind") != "hilr-agent":
            raise CheckpointError(f"{path} is not a hilr agent checkpoint")
        self.load_state_dict(state)
        return meta

    @classmethod
    def from_checkpoint(cls, path: str | Path, base_policy: BasePolicy | None = None, device: str | None = None) -> "Agent":
        """Build an Agent from a checkpoint's own config and spec, then load it."""
        from policies.checkpoint import read_metadata

        meta = read_metadata(path)
        cfg_d = dict(meta["config"])
        cfg_d["encoder"] = {**cfg_d["encoder"], "pretrained": None}
        cfg_d.setdefault("normalize_state", False)  # checkpoints from before the state normaliser
        if device:
            cfg_d["device"] = device
        agent = cls({k: (tuple(s), d) for k, (s, d) in meta["spec"].items()}, AgentConfig(**cfg_d), base_policy)
        agent.load(path)
        return agent
