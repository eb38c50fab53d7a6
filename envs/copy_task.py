"""``gatedrl/Copy-v0``: the copy task of the gate paper (PAPER.md) as a reinforcement-learning problem.

Observation index ``t`` runs over ``2 * length + delay`` steps:

    t < length                      shows symbol s_t (one of ``num_symbols``)
    length <= t < length + delay    shows a blank
    t >= length + delay             shows the go marker; the action taken here is the
                                    agent's copy of s_j, j = t - length - delay, and
                                    pays ``1 / length`` when it equals s_j

Actions before the go marker have no effect. Maximum return 1; a policy that cannot
recall the symbols earns ``1 / num_symbols`` in expectation. ``info["success"]``
on the last step is true when every symbol was copied.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.match_base import check_task_options
from envs.rendering import EMPTY, apple_code, paint


class CopyEnv(gym.Env):
    """Copy ``length`` symbols after ``delay`` blank steps; ``num_symbols`` actions.

    Vector observation: one-hot float32 ``[num_symbols + 2]`` (the symbols, blank, go marker).
    Image observation: uint8 ``[image_size, image_size, 3]`` filled with the symbol's
    palette colour, black for blank, white for the go marker.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        num_symbols: int = 4,
        length: int = 3,
        delay: int = 10,
        obs_type: str = "vector",
        image_size: int = 24,
        render_mode: str | None = None,
    ) -> None:
        check_task_options(num_colours=num_symbols, delay=delay, obs_type=obs_type, image_size=image_size)
        if length < 1:
            raise ValueError(f"length={length} must be >= 1")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} must be None or 'rgb_array'")
        self.num_symbols, self.length, self.delay = num_symbols, length, delay
        self.obs_type, self.image_size, self.render_mode = obs_type, image_size, render_mode
        self.episode_length = 2 * length + delay
        self.action_space = spaces.Discrete(num_symbols)
        if obs_type == "vector":
            self.observation_space = spaces.Box(0.0, 1.0, (num_symbols + 2,), dtype=np.float32)
        else:
            self.observation_space = spaces.Box(0, 255, (image_size, image_size, 3), dtype=np.uint8)
        self._t, self._correct = 0, 0
        self._symbols = np.zeros(length, dtype=np.int64)

    @property
    def blank(self) -> int:
        return self.num_symbols

    @property
    def go_marker(self) -> int:
        return self.num_symbols + 1

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t, self._correct = 0, 0
        self._symbols = self.np_random.integers(self.num_symbols, size=self.length)
        return self._observation(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        answer_index = self._t - self.length - self.delay
        reward = 0.0
        if answer_index >= 0 and int(action) == self._symbols[answer_index]:
            reward = 1.0 / self.length
            self._correct += 1
        self._t += 1
        terminated = self._t == self.episode_length
        # Like the match tasks, the last step says whether the whole copy was right.
        info = {"success": self._correct == self.length} if terminated else {}
        return self._observation(), reward, terminated, False, info

    def render(self) -> np.ndarray | None:
        return self._image() if self.render_mode == "rgb_array" else None

    def _token(self) -> int:
        """Token shown at the current step: a symbol, ``blank`` (also after the end) or ``go_marker``."""
        if self._t < self.length:
            return int(self._symbols[self._t])
        in_delay = self._t < self.length + self.delay or self._t >= self.episode_length
        return self.blank if in_delay else self.go_marker

    def _image(self) -> np.ndarray:
        # Symbols keep their palette colour; blank paints black (EMPTY), the go marker white (the apple colour).
        token = self._token()
        code = {self.blank: EMPTY, self.go_marker: apple_code(self.num_symbols)}.get(token, token)
        return paint(np.array([[code]]), self.num_symbols, self.image_size)

    def _observation(self) -> np.ndarray:
        if self.obs_type == "image":
            return self._image()
        vector = np.zeros(self.num_symbols + 2, dtype=np.float32)
        vector[self._token()] = 1.0
        return vector
