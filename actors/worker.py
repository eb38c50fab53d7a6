"""``RolloutWorker``: steps ``envs_per_actor`` environments with a CPU copy of the agent.

Plain Python, no Ray: the same worker runs in-process (``LocalActorPool``, tests) or
inside a Ray actor (``actors/pool.py``). Each call to ``rollout()`` returns one
``Trajectory`` in the T + 1 layout of ``actors/trajectory.py``; the worker carries
the environments, the agent's inputs and the core state from one rollout to the next.
With ``context_length`` K > 0 it also keeps the inputs of the last K steps before the
next rollout's index 0 and the core state before the oldest of them (``Context``).

Shapes: ``B = len(env_fns)`` environments, ``L`` policy logits, ``S`` the core state.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from actors.trajectory import INPUT_FIELDS, Context, EpisodeStats, Trajectory

log = logging.getLogger(__name__)

EnvFn = Callable[[], gym.Env]
# Attempts to recreate and reset a failing environment before the worker gives up.
_MAX_RESET_ATTEMPTS = 5

CoreState = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class WorkerStats:
    """Counters over the worker's lifetime."""

    env_steps: int
    episodes: int
    env_errors: int


class _Row(NamedTuple):
    """One time step of all ``B`` environments; the fields of ``Trajectory`` without the time axis."""

    obs: np.ndarray  # [B, *obs_shape]
    prev_action: np.ndarray  # [B, *action_shape]
    prev_reward: np.ndarray  # [B] float32
    is_first: np.ndarray  # [B] bool
    action: np.ndarray  # [B, *action_shape] int64
    behaviour_logits: np.ndarray  # [B, L] float32
    reward: np.ndarray  # [B] float32
    terminated: np.ndarray  # [B] bool
    truncated: np.ndarray  # [B] bool


def worker_seeds(seed: int, num_envs: int) -> tuple[list[int], int]:
    """Independent seeds derived from a worker's seed: ``(env_seeds [num_envs], sampling_seed)``."""
    state = np.random.SeedSequence(seed).generate_state(num_envs + 1, dtype=np.uint32)
    return [int(s) for s in state[:num_envs]], int(state[num_envs])


def context_from_history(
    history: Sequence[tuple[_Row, CoreState]], context_length: int, template: _Row, start_state: CoreState
) -> Context:
    """The ``Context`` of a rollout: the inputs of the last ``context_length`` steps before its index 0.

    Args:
        history: ``(row, core state before the row)`` of the steps before index 0, oldest first,
            at most ``context_length`` of them.
        context_length: K.
        template: a row of this worker (shapes and dtypes of the padding).
        start_state: the core's initial state, the state before padding.

    A worker younger than K steps pads the front with zero inputs marked ``is_first``. The
    worker's own first step has ``is_first`` true, so the core is reset there and the replay
    from that step on is exactly the replay of the shorter history: padding costs compute,
    never correctness (Trajectory's ``Context``).
    """
    padding = context_length - len(history)
    if padding < 0:
        raise ValueError(f"history of {len(history)} steps is longer than the context ({context_length})")
    pad_row = template._replace(
        obs=np.zeros_like(template.obs),
        prev_action=np.zeros_like(template.prev_action),
        prev_reward=np.zeros_like(template.prev_reward),
        is_first=np.ones_like(template.is_first),
    )
    rows = [pad_row] * padding + [row for row, _ in history]
    state = start_state if padding else history[0][1]
    arrays = {name: np.stack([getattr(row, name) for row in rows]) for name in INPUT_FIELDS}
    return Context(**arrays, initial_state=tuple(s.numpy().copy() for s in state))


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


class RolloutWorker:
    """Owns ``B`` environments and an agent; ``rollout()`` returns one ``Trajectory``.

    Args:
        env_fns: zero-argument callables, one per environment, each returning a new
            gymnasium env; also used to recreate an environment that raised.
        agent: follows the ``agents.Agent`` contract (``initial_state``, ``forward`` with
            ``[T, B, ...]`` inputs, ``distribution.sample``); used on the CPU, T = 1.
        unroll_length: T, the new steps per rollout (the first rollout takes T + 1).
        actor_id: recorded in every trajectory.
        discount: gamma, used to fold ``discount * V(final_obs)`` into truncated steps.
        seed: seeds the first reset of each env (``worker_seeds``), the action sampling and
            the resets of recreated envs; None leaves them unseeded.
        max_env_errors: raise ``RuntimeError`` once more environment errors than this occurred.
        context_length: K, the earlier steps each trajectory carries as its ``Context`` (0: none).
    """

    def __init__(
        self,
        env_fns: Sequence[EnvFn],
        agent: nn.Module,
        unroll_length: int,
        actor_id: int = 0,
        discount: float = 0.99,
        seed: int | None = None,
        max_env_errors: int | None = None,
        context_length: int = 0,
    ) -> None:
        if unroll_length < 1 or not env_fns or context_length < 0:
            raise ValueError(
                f"need unroll_length >= 1, at least one env and context_length >= 0, got {unroll_length}, "
                f"{len(env_fns)}, {context_length}"
            )
        self._env_fns = list(env_fns)
        self._agent = agent.cpu().eval()
        self._unroll_length = unroll_length
        self._actor_id = actor_id
        self._discount = discount
        self._max_env_errors = max_env_errors
        num_envs = len(self._env_fns)
        env_seeds, sampling_seed = worker_seeds(seed, num_envs) if seed is not None else (None, None)
        self._generator = torch.Generator()
        if sampling_seed is not None:
            self._generator.manual_seed(sampling_seed)
        self._reseed = np.random.default_rng(sampling_seed)
        self.policy_version = -1
        self._env_steps = self._num_episodes = self._env_errors = 0
        self._finished: list[EpisodeStats] = []
        self._last: tuple[_Row, tuple[torch.Tensor, ...]] | None = None

        self._envs = [fn() for fn in self._env_fns]
        first_obs = [
            env.reset(seed=None if env_seeds is None else int(env_seeds[i]))[0] for i, env in enumerate(self._envs)
        ]
        self._obs = np.stack([np.asarray(o) for o in first_obs])
        action_shape = self._envs[0].action_space.shape or ()
        self._prev_action = np.zeros((num_envs, *action_shape), dtype=np.int64)
        self._prev_reward = np.zeros(num_envs, dtype=np.float32)
        self._is_first = np.ones(num_envs, dtype=bool)
        self._state = tuple(agent.initial_state(num_envs, device=torch.device("cpu")))
        self._start_state = self._state
        self._context_length = context_length
        # (row, core state before it) of the steps before the next rollout's index 0.
        self._history: deque[tuple[_Row, CoreState]] = deque(maxlen=context_length)
        self._episode_return = np.zeros(num_envs, dtype=np.float64)
        self._episode_length = np.zeros(num_envs, dtype=np.int64)

    # ------------------------------------------------------------------ public API
    def set_weights(self, version: int, state_dict: dict[str, Any]) -> None:
        """Load the learner's weights; trajectories from now on carry ``version``."""
        self._agent.load_state_dict(state_dict)
        self.policy_version = version

    def rollout(self) -> Trajectory:
        """Step every env ``unroll_length`` times and return the T + 1 trajectory.

        Index 0 repeats the last step of the previous rollout (the first rollout steps
        T + 1 times instead), and ``initial_state`` is the core state before index 0.
        With ``context_length`` K > 0, ``context`` holds the K steps before index 0.
        """
        if self._last is None:
            self._last = self._step()
        steps = [self._last]
        for _ in range(self._unroll_length):
            steps.append(self._step())
        self._last = steps[-1]
        context = self._take_context(steps)
        episodes, self._finished = tuple(self._finished), []
        rows = [row for row, _ in steps]
        arrays = {name: np.stack([getattr(row, name) for row in rows]) for name in _Row._fields}
        return Trajectory(
            **arrays,
            initial_state=tuple(s.numpy().copy() for s in steps[0][1]),
            actor_id=self._actor_id,
            policy_version=self.policy_version,
            episodes=episodes,
            context=context,
        )

    def _take_context(self, steps: list[tuple[_Row, CoreState]]) -> Context | None:
        """This rollout's context (None for K = 0), then remember its steps for the next one.

        ``steps[-1]`` is the next rollout's index 0, so it is not history yet.
        """
        if not self._context_length:
            return None
        context = context_from_history(self._history, self._context_length, steps[0][0], self._start_state)
        self._history.extend(steps[:-1])
        return context

    def stats(self) -> WorkerStats:
        return WorkerStats(env_steps=self._env_steps, episodes=self._num_episodes, env_errors=self._env_errors)

    def close(self) -> None:
        for env in self._envs:
            _close_quietly(env)

    # ------------------------------------------------------------------ stepping
    def _infer(
        self,
        obs: np.ndarray,
        prev_action: np.ndarray,
        prev_reward: np.ndarray,
        is_first: np.ndarray,
        state: tuple[torch.Tensor, ...],
    ) -> tuple[Any, tuple[torch.Tensor, ...]]:
        """One batched T = 1 inference; inputs are ``[n, ...]`` numpy arrays."""
        inputs = (_as_tensor(x).unsqueeze(0) for x in (obs, prev_action, prev_reward, is_first))
        with torch.inference_mode():
            output, new_state = self._agent(*inputs, state)
        return output, tuple(new_state)

    def _step(self) -> tuple[_Row, tuple[torch.Tensor, ...]]:
        """Act once in every env; returns the step's row and the core state before it."""
        state_before = self._state
        output, self._state = self._infer(self._obs, self._prev_action, self._prev_reward, self._is_first, state_before)
        with torch.inference_mode():
            action = self._agent.distribution.sample(output.policy_logits, generator=self._generator)
        action = action[0].numpy().astype(np.int64)  # [B, *action_shape]
        baseline = output.baseline[0].numpy().astype(np.float32)  # [B]
        num_envs = len(self._envs)
        reward = np.zeros(num_envs, dtype=np.float32)
        terminated = np.zeros(num_envs, dtype=bool)
        truncated = np.zeros(num_envs, dtype=bool)
        next_obs: list[np.ndarray] = []
        final_obs: dict[int, np.ndarray] = {}
        for i, env in enumerate(self._envs):
            try:
                obs_i, reward[i], terminated[i], truncated[i], _ = env.step(action[i])
            except Exception as error:  # any env failure is survivable
                next_obs.append(self._recreate_env(i, error))
                # A cut whose reward is the actor's own V(obs_t): its V-trace advantage is
                # ~0, so the discarded step teaches neither the policy nor the baseline.
                reward[i], truncated[i] = baseline[i], True
                continue
            truncated[i] = truncated[i] and not terminated[i]
            self._record_reward(i, float(reward[i]), bool(terminated[i] or truncated[i]))
            if terminated[i] or truncated[i]:
                final_obs[i] = np.asarray(obs_i)
                obs_i = self._reset_env(i)
            next_obs.append(np.asarray(obs_i))
        raw_reward = reward.copy()
        self._add_truncation_bootstrap(reward, truncated, final_obs, action, raw_reward)
        row = _Row(
            self._obs, self._prev_action, self._prev_reward, self._is_first,
            action, output.policy_logits[0].numpy().astype(np.float32), reward, terminated, truncated,
        )  # fmt: skip
        self._advance_inputs(np.stack(next_obs), action, raw_reward, terminated | truncated)
        return row, state_before

    def _add_truncation_bootstrap(
        self,
        reward: np.ndarray,
        truncated: np.ndarray,
        final_obs: dict[int, np.ndarray],
        action: np.ndarray,
        raw_reward: np.ndarray,
    ) -> None:
        """``reward[i] += discount * V(final_obs_i)`` for time-limit cuts (DESIGN.md, Truncation).

        V is one batched inference over the cut envs only, from the core state after
        this step, with this step's action and reward as the previous ones.
        """
        cut = [i for i in final_obs if truncated[i]]
        if not cut:
            return
        state = tuple(s[cut] for s in self._state)
        obs = np.stack([final_obs[i] for i in cut])
        output, _ = self._infer(obs, action[cut], raw_reward[cut], np.zeros(len(cut), dtype=bool), state)
        reward[cut] += self._discount * output.baseline[0].numpy().astype(np.float32)

    def _advance_inputs(self, next_obs: np.ndarray, action: np.ndarray, reward: np.ndarray, done: np.ndarray) -> None:
        """The agent's next inputs: a fresh episode starts with prev action 0 and prev reward 0."""
        self._obs = next_obs
        self._prev_action = np.where(done.reshape(-1, *([1] * (action.ndim - 1))), 0, action).astype(np.int64)
        self._prev_reward = np.where(done, 0.0, reward).astype(np.float32)
        self._is_first = done.copy()
        self._env_steps += len(done)

    def _record_reward(self, i: int, reward: float, episode_over: bool) -> None:
        self._episode_return[i] += reward
        self._episode_length[i] += 1
        if episode_over:
            self._finished.append(EpisodeStats(float(self._episode_return[i]), int(self._episode_length[i])))
            self._num_episodes += 1
            self._episode_return[i] = 0.0
            self._episode_length[i] = 0

    # ------------------------------------------------------------------ failures
    def _reset_env(self, i: int) -> np.ndarray:
        try:
            return np.asarray(self._envs[i].reset()[0])
        except Exception as error:
            return self._recreate_env(i, error)

    def _recreate_env(self, i: int, error: Exception) -> np.ndarray:
        """Close env ``i`` after ``error``, build a new one, reset it; its episode is discarded."""
        for _ in range(_MAX_RESET_ATTEMPTS):
            self._count_env_error(i, error)
            _close_quietly(self._envs[i])
            self._episode_return[i] = 0.0
            self._episode_length[i] = 0
            try:
                self._envs[i] = self._env_fns[i]()
                return np.asarray(self._envs[i].reset(seed=int(self._reseed.integers(2**31)))[0])
            except Exception as new_error:
                error = new_error
        raise RuntimeError(f"actor {self._actor_id}: env {i} failed {_MAX_RESET_ATTEMPTS} times in a row") from error

    def _count_env_error(self, i: int, error: Exception) -> None:
        self._env_errors += 1
        log.warning("actor %d: env %d raised %r; recreating it", self._actor_id, i, error)
        if self._max_env_errors is not None and self._env_errors > self._max_env_errors:
            raise RuntimeError(
                f"actor {self._actor_id}: {self._env_errors} environment errors (max_env_errors="
                f"{self._max_env_errors}); last: {error!r}"
            ) from error


def _close_quietly(env: gym.Env) -> None:
    """Close an env that may already be broken; a failure to close must not stop the actor."""
    try:
        env.close()
    except Exception as error:
        log.debug("closing a failed env raised %r", error)
