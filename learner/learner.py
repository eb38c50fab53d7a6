"""The IMPALA learner: replay the agent over a batch, V-trace, one optimiser step; checkpoints and weights.

Batch layout (actors/trajectory.py): ``[T+1, B]`` where step t holds the agent's inputs at t,
the action taken at t and what followed it. The learner unrolls the agent over all T+1
steps from the stored ``initial_state`` (the state the actor had, never zeros), trains on
steps 0..T-1 and bootstraps from ``baseline[T]``. Step T is trained as step 0 of the next
rollout of the same environments.

With a context (``actors.context_length`` K > 0; ``learner.batch.replay_inputs``) the agent
runs over K + T + 1 steps from the state before the context, with gradient through all of
them, and everything after the replay (V-trace, every loss term, gate statistics) sees only
the last T + 1 outputs: credit crosses the unroll boundary, the trained steps do not change.
"""

from __future__ import annotations

import dataclasses
import io
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, overload

import torch
from torch import Tensor, nn

from actors.trajectory import Trajectory
from configs.schema import LearnerConfig
from learner import metrics as m
from learner.batch import Batch, make_batch, replay_inputs
from learner.losses import LossTerms, total_loss
from learner.optim import learning_rate_at, make_optimizer, set_learning_rate
from learner.popart import update_value_head
from learner.run_dir import write_checkpoint
from learner.vtrace import VTraceReturns, from_importance_weights

if TYPE_CHECKING:
    from agents import ActionDistribution, AgentOutput
    from agents.heads import ValueHead

CHECKPOINT_FORMAT = 1


class Targets(NamedTuple):
    """What every pass over one batch shares, computed once at its first pass (constants)."""

    vtrace: VTraceReturns  # [T, B]
    log_rhos: Tensor  # [T, B] log pi_old(a|x) - log mu(a|x)
    old_log_probs: Tensor  # [T, B] log pi_old(a|x): the policy at the first pass (PPO's anchor)


class LossOutputs(NamedTuple):
    terms: LossTerms  # scalars, with gradient
    entropy: Tensor  # [T, B], with gradient
    targets: Targets  # the batch's constants, shared by later passes
    log_probs: Tensor  # [T, B] log pi(a|x) of this pass, no gradient
    pg_advantages: Tensor  # [T, B] the advantages the policy term used (divided by PopArt's std), no gradient

    @property
    def vtrace(self) -> VTraceReturns:
        return self.targets.vtrace

    @property
    def log_rhos(self) -> Tensor:
        return self.targets.log_rhos


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def step_discounts(terminated: Tensor, truncated: Tensor, discount: float) -> Tensor:
    """``gamma_t = discount * (1 - (terminated_t | truncated_t))``, [T, B] bool -> [T, B] float.

    A truncated step is terminal here because the actor already added ``discount * V(final_obs)``
    to its reward (DESIGN.md): bootstrapping from ``V(x_{t+1})``, the first observation of the
    next episode, would be wrong.
    """
    return discount * (~(terminated | truncated)).float()


def replay(agent: nn.Module, batch: Batch, collect_gates: bool = False) -> AgentOutput:
    """The agent over the batch (after its context, if any): outputs ``[T+1, B, ...]`` with gradient.

    Context steps are run from their older state and then dropped from the outputs, so nothing
    downstream trains on them; their effect, and the gradient into them, go through the core state.
    """
    inputs = replay_inputs(batch)
    output, _ = agent(*inputs[:5], collect_gates=collect_gates)
    skip = inputs.context_length
    if not skip:
        return output
    gates = {name: gate[skip:] for name, gate in output.gates.items()}
    return output._replace(policy_logits=output.policy_logits[skip:], baseline=output.baseline[skip:], gates=gates)


def vtrace_targets(
    batch: Batch, log_probs: Tensor, output: AgentOutput, distribution: ActionDistribution, config: LearnerConfig
) -> Targets:
    """V-trace's targets and advantages for ``batch`` under the policy and values of ``output``.

    ``log_probs`` [T, B] are ``log pi(a_t|x_t)`` of ``output``; everything returned is detached.
    """
    rewards = batch.reward[:-1]
    if config.reward_clip is not None:
        rewards = rewards.clamp(-config.reward_clip, config.reward_clip)
    discounts = step_discounts(batch.terminated[:-1], batch.truncated[:-1], config.discount)
    behaviour_log_probs = distribution.log_prob(batch.behaviour_logits[:-1], batch.action[:-1])
    log_probs = log_probs.detach()
    log_rhos = log_probs - behaviour_log_probs
    vt = config.vtrace
    returns = from_importance_weights(
        log_rhos,
        discounts,
        rewards,
        output.baseline[:-1].detach(),
        output.baseline[-1].detach(),
        clip_rho_threshold=vt.clip_rho_threshold,
        clip_pg_rho_threshold=vt.clip_pg_rho_threshold,
        clip_c_threshold=vt.clip_c_threshold,
        lambda_=vt.lambda_,
    )
    return Targets(vtrace=returns, log_rhos=log_rhos, old_log_probs=log_probs)


def impala_loss(
    batch: Batch,
    output: AgentOutput,
    distribution: ActionDistribution,
    config: LearnerConfig,
    value_head: ValueHead | None = None,
    targets: Targets | None = None,
) -> LossOutputs:
    """The IMPALA loss of one replayed batch.

    Args:
        batch: ``[T+1, B]`` trajectories on the learner's device.
        output: the agent's ``AgentOutput`` over all T+1 steps (policy_logits [T+1, B, L], baseline [T+1, B]).
        distribution: the agent's ``ActionDistribution`` (``log_prob``, ``entropy``).
        config: discount, reward clip, V-trace thresholds, the loss weights and ``ppo_clip``.
        value_head: with PopArt, the head whose statistics normalise the baseline regression and
            scale the advantages by ``1 / std`` (V-trace itself runs on returns); None: raw returns.
        targets: the batch's V-trace targets from an earlier pass (``learner.epochs_per_batch`` > 1);
            None computes them from ``output``, as at a batch's first pass.
    """
    logits, values = output.policy_logits[:-1], output.baseline[:-1]
    target_log_probs = distribution.log_prob(logits, batch.action[:-1])  # [T, B], with gradient
    if targets is None:
        targets = vtrace_targets(batch, target_log_probs, output, distribution, config)
    returns = targets.vtrace
    entropy = distribution.entropy(logits)
    pg_advantages, fitted, fit_targets = returns.pg_advantages, values, returns.vs
    if value_head is not None:
        # (V - mean) / std is the head's linear output itself: the same gradient, in normalised units.
        pg_advantages = pg_advantages / value_head.std
        fitted, fit_targets = value_head.normalise(values), value_head.normalise(returns.vs)
    terms = total_loss(
        target_log_probs,
        pg_advantages,
        fitted,
        fit_targets,
        entropy,
        config.baseline_cost,
        config.entropy_cost,
        old_action_log_probs=targets.old_log_probs,
        ppo_clip=config.ppo_clip,
    )
    return LossOutputs(terms, entropy, targets, target_log_probs.detach(), pg_advantages.detach())


def clip_fraction(loss: LossOutputs, ppo_clip: float | None) -> Tensor:
    """The share of trained steps whose ratio ``pi / pi_old`` lies outside ``1 +- ppo_clip`` (0 without clipping)."""
    if ppo_clip is None:
        return torch.zeros((), device=loss.log_probs.device)
    ratio = torch.exp(loss.log_probs - loss.targets.old_log_probs)
    return ((ratio - 1.0).abs() > ppo_clip).float().mean()


def _loss_metrics(loss: LossOutputs, grad_norm: Tensor, clip_rho_threshold: float | None) -> Tensor:
    """The metrics computed on the device, stacked for one host copy: the first six of
    ``LEARNER_METRICS`` (loss terms, policy entropy, grad norm), then the five ``vtrace/`` ones."""
    rhos = torch.exp(loss.log_rhos)
    clip_frac = torch.zeros(()) if clip_rho_threshold is None else (rhos > clip_rho_threshold).float().mean()
    values = [
        loss.terms.total,
        loss.terms.pg,
        loss.terms.baseline,
        loss.terms.entropy,
        loss.entropy.mean(),
        grad_norm,
        rhos.mean(),
        clip_frac.to(rhos.device),
        loss.vtrace.vs.mean(),
        loss.vtrace.pg_advantages.mean(),
        loss.pg_advantages.square().mean().sqrt(),
    ]
    return torch.stack([v.detach().float() for v in values])


# Agent keys added after checkpoints were first written, with the value every older checkpoint has: a key
# at that value is left out of the record, so that those checkpoints still load; any other value is recorded.
KEYS_RECORDED_AWAY_FROM = {"head_sizes": (), "prev_action_reward": True, "layer_norm": False, "critic": "shared"}


def without_keys_at_old_values(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` less the keys of ``KEYS_RECORDED_AWAY_FROM`` that hold their old value. Applied to both
    records a load compares, so a checkpoint written before a key existed, or while it was still recorded
    at its old value, loads into today's learner."""
    kept = dict(config)
    for key, old_value in KEYS_RECORDED_AWAY_FROM.items():
        value = kept.get(key, old_value)
        if value == old_value or (isinstance(value, list | tuple) and tuple(value) == old_value):
            kept.pop(key, None)
    return kept


def model_config(agent_config: Any) -> dict[str, Any] | None:
    """The agent config as a checkpoint records it: what the weights depend on. ``core.compile`` and
    ``core.compile_chunk`` are left out: they only pick a code path with the same results
    (memory_cells/compiled.py), so a run compiled on a GPU resumes with ``off`` on a CPU, and checkpoints
    written before the switches existed still load. The keys of ``KEYS_RECORDED_AWAY_FROM`` are left out
    at the value they had before they existed."""
    if not dataclasses.is_dataclass(agent_config):
        return None
    config = dataclasses.asdict(agent_config)
    if isinstance(config.get("core"), dict):
        config["core"].pop("compile", None)
        config["core"].pop("compile_chunk", None)
    return without_keys_at_old_values(config)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{"a.b": leaf}`` (for naming the first config key that differs)."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _first_mismatch(saved: dict[str, Any], current: dict[str, Any]) -> str | None:
    """A one-line description of the first difference between two checkpoint metadata records."""
    saved_config = _flatten(without_keys_at_old_values(saved["agent_config"] or {}))
    current_config = _flatten(current["agent_config"] or {})
    if saved["agent_config"] is not None and current["agent_config"] is not None:
        for key in sorted(set(saved_config) | set(current_config)):
            if saved_config.get(key) != current_config.get(key):
                return f"agent config {key} is {saved_config.get(key)!r} in the checkpoint, {current_config.get(key)!r} here"
    saved_shapes, current_shapes = saved["parameter_shapes"], current["parameter_shapes"]
    for name in sorted(set(saved_shapes) | set(current_shapes)):
        saved_shape, current_shape = saved_shapes.get(name), current_shapes.get(name)
        if saved_shape != current_shape:
            where = f"has shape {saved_shape}" if saved_shape is not None else "is missing"
            here = f"{current_shape}" if current_shape is not None else "missing"
            return f"parameter {name} {where} in the checkpoint, {here} here"
    for key in ("agent_class", "optimizer"):
        if saved[key] != current[key]:
            return f"{key} is {saved[key]!r} in the checkpoint, {current[key]!r} here"
    return None


class Learner:
    """Owns the agent on its device, the optimiser, the learning-rate schedule and the counters.

    Args:
        agent: an ``agents.Agent`` (or anything with its contract); moved to the learner's device.
        learner_config: the ``learner`` section of the config.
        total_updates: the number of updates of the whole run (the linear schedule reaches zero there).
    """

    def __init__(self, agent: nn.Module, learner_config: LearnerConfig, total_updates: int) -> None:
        self.config = learner_config
        self.total_updates = int(total_updates)
        self.device = resolve_device(learner_config.device)
        self.agent = agent.to(self.device)
        self.agent.train()
        self.optimizer = make_optimizer(self.agent.parameters(), learner_config)
        self.updates = 0  # successful optimiser steps; the schedule's clock
        self.env_steps = 0  # T x B of every batch handed to update, skipped or not
        self.version = 0  # weight version published to actors; +1 per successful step
        self.skipped_steps = 0  # non-finite steps skipped
        self.value_head = popart_head(self.agent, learner_config.value_norm)

    def make_batch(self, trajectories: Sequence[Trajectory]) -> Batch:
        """Trajectories -> a ``Batch`` on this learner's device."""
        return make_batch(trajectories, self.device)

    @overload
    def update(self, batch: Batch, collect_gates: Literal[False] = False) -> dict[str, float]: ...

    @overload
    def update(self, batch: Batch, collect_gates: Literal[True]) -> tuple[dict[str, float], dict[str, Tensor]]: ...

    def update(self, batch: Batch, collect_gates: bool = False):
        """One synchronous IMPALA update on ``batch`` (``[T+1, B]``, on this learner's device).

        With ``learner.epochs_per_batch`` K > 1 the batch is replayed K times, one optimiser step each,
        all passes sharing the V-trace targets of the first (APPO: with ``learner.ppo_clip`` the policy
        term is PPO's clipped surrogate against the first pass's policy). The update counts once: one
        weight version, one tick of the learning-rate schedule, one PopArt statistics update.

        Returns the metrics of ``metrics.LEARNER_METRICS`` (the loss terms, entropy and gradient norm of
        the first pass; ``policy/ppo_clip_frac`` after the last); with ``collect_gates`` also the first
        replay's gate activations ``{name: [T, B, H]}`` as CPU tensors (steps 0..T-1, the trained ones;
        never the context's).
        A non-finite loss or gradient norm skips that optimiser step and the passes after it, and
        ``optim/skipped_steps`` counts it; the steps of earlier passes stand. When the first pass is
        skipped, weights, optimiser state and the schedule stay as they were.
        """
        start = time.perf_counter()
        lr = learning_rate_at(self.updates, self.config, self.total_updates)
        targets, first, stepped = None, None, False
        for epoch in range(self.config.epochs_per_batch):
            output = replay(self.agent, batch, collect_gates and epoch == 0)
            loss = impala_loss(batch, output, self.agent.distribution, self.config, self.value_head, targets)
            host, finite = self._step(loss, lr)
            if first is None:
                first, gates, targets = host, output.gates, loss.targets
            if not finite:
                break
            stepped = True
        if stepped:
            if self.value_head is not None:
                popart = self.config.popart
                update_value_head(self.value_head, targets.vtrace.vs, popart.step_size, popart.min_std)
            self.updates += 1
            self.version += 1
        self.env_steps += batch.num_steps
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # so that learner_ms includes the optimiser's kernels
        clip_frac = float(clip_fraction(loss, self.config.ppo_clip)) if self.config.epochs_per_batch > 1 else 0.0
        values = first[:6] + [lr] + first[6:] + [1000 * (time.perf_counter() - start), float(self.skipped_steps)]
        values += value_statistics(self.value_head) + [clip_frac]
        result = dict(zip(m.LEARNER_METRICS, values, strict=True))
        if not collect_gates:
            return result
        return result, {name: gate[:-1].detach().cpu() for name, gate in gates.items()}

    def _step(self, loss: LossOutputs, lr: float) -> tuple[list[float], bool]:
        """Backward and one optimiser step at ``lr``, unless the loss or gradient norm is not finite
        (then counted in ``skipped_steps``). Returns the metrics on the host and whether it stepped."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.terms.total.backward()
        max_norm = self.config.grad_norm_clip if self.config.grad_norm_clip is not None else float("inf")
        grad_norm = nn.utils.clip_grad_norm_(self.agent.parameters(), max_norm)
        host = _loss_metrics(loss, grad_norm, self.config.vtrace.clip_rho_threshold).cpu().tolist()  # one sync
        finite = all(map(_finite, host[:6]))
        if finite:
            set_learning_rate(self.optimizer, lr)
            self.optimizer.step()
        else:
            self.skipped_steps += 1
        self.optimizer.zero_grad(set_to_none=True)
        return host, finite

    def get_weights(self) -> tuple[int, dict[str, Tensor]]:
        """``(version, state_dict)`` with CPU copies of every tensor, ready for one ``ray.put``.

        Actors apply them with ``agent.load_state_dict(weights)``.
        """
        return self.version, {name: t.detach().to("cpu", copy=True) for name, t in self.agent.state_dict().items()}

    def metadata(self) -> dict[str, Any]:
        """What a checkpoint must agree on to be loaded into this learner."""
        return {
            "agent_class": type(self.agent).__name__,
            "agent_config": model_config(getattr(self.agent, "agent_config", None)),
            "parameter_shapes": {name: list(t.shape) for name, t in self.agent.state_dict().items()},
            "optimizer": f"{self.config.optimizer}/{self.config.rmsprop_eps_convention}",
        }

    def state_dict(self) -> dict[str, Any]:
        """Agent, optimiser (with its learning rate), counters and metadata.

        The schedule has no state of its own: the learning rate is a function of ``updates``
        (restored here) and ``total_updates`` (the constructor's, so a resumed run may be lengthened).
        """
        return {
            "format": CHECKPOINT_FORMAT,
            "metadata": self.metadata(),
            "agent": self.agent.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "counters": {
                "updates": self.updates,
                "env_steps": self.env_steps,
                "version": self.version,
                "skipped_steps": self.skipped_steps,
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict``; raise a one-line ``ValueError`` naming the first mismatch."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint format {state.get('format')!r} is not {CHECKPOINT_FORMAT}")
        mismatch = _first_mismatch(state["metadata"], self.metadata())
        if mismatch is not None:
            raise ValueError(f"checkpoint does not match this learner: {mismatch}")
        self.agent.load_state_dict(state["agent"])
        self.optimizer.load_state_dict(state["optimizer"])
        counters = state["counters"]
        self.updates, self.env_steps = int(counters["updates"]), int(counters["env_steps"])
        self.version, self.skipped_steps = int(counters["version"]), int(counters["skipped_steps"])

    def state_bytes(self) -> bytes:
        """``state_dict()`` in ``torch.save``'s format: a checkpoint file's content, ready to travel."""
        buffer = io.BytesIO()
        torch.save(self.state_dict(), buffer)
        return buffer.getvalue()

    def load_state_bytes(self, data: bytes) -> None:
        """The inverse of ``state_bytes``; tensors go to this learner's device."""
        self.load_state_dict(torch.load(io.BytesIO(data), map_location=self.device, weights_only=True))

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write ``state_bytes()`` atomically (``learner.run_dir.write_checkpoint``)."""
        write_checkpoint(Path(path), self.state_bytes())

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Load a checkpoint written by ``save_checkpoint`` (tensors mapped to this learner's device)."""
        self.load_state_bytes(Path(path).read_bytes())


def popart_head(agent: nn.Module, value_norm: str) -> ValueHead | None:
    """The agent's value head when PopArt normalises it; a one-line error if the agent has none."""
    if value_norm == "none":
        return None
    head = getattr(agent, "value_head", None)
    if head is None:
        raise ValueError(
            f"learner.value_norm={value_norm!r} needs an agent with a value_head (agents.heads.ValueHead);"
            f" {type(agent).__name__} has none (use learner.value_norm=none)"
        )
    return head


def value_statistics(value_head: ValueHead | None) -> list[float]:
    """PopArt's mean and std as metrics (0 and 1 when returns are not normalised)."""
    if value_head is None:
        return [0.0, 1.0]
    return [float(value_head.mean), float(value_head.std)]


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")
