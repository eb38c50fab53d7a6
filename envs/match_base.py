"""The three-phase structure shared by the visual-match tasks (Hung et al. 2018; PAPER.md).

Observation index ``t`` runs over ``cue_steps + delay + 1`` steps and the action
taken after observation ``t`` is scored by the phase of ``t``:

    phase 1, t < cue_steps                 the cue (a colour); subclasses say how it is shown
    phase 2, cue_steps <= t < +delay       distractor: an apple in one of K slots; picking
                                           that slot pays ``apple_reward``
    phase 3, t = cue_steps + delay         K colours in random slots; choosing the cue colour
                                           pays +1, anything else 0; the episode ends either
                                           way. ``choice="colour"``: action c names colour c;
                                           ``choice="slot"``: action i picks the colour shown
                                           in slot i (DeepMind Lab's "walk to the match")

Everything random (cue, apple slots, option order) is drawn at ``reset`` from the
environment's seeded generator, independently of each other, so a policy that
cannot recall phase 1 succeeds in phase 3 with probability exactly 1/K.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.rendering import EMPTY, MAX_COLOURS, apple_code, num_codes, one_hot_codes, paint, slot_grid

CUE, DISTRACTOR, CHOICE = 0, 1, 2
NUM_PHASES = 3
OBS_TYPES = ("vector", "image")
CHOICES = ("colour", "slot")


def check_task_options(*, num_colours: int, delay: int, obs_type: str, image_size: int) -> None:
    """Refuse option values the tasks cannot honour, naming the option; raise ``ValueError``."""
    if not 2 <= num_colours <= MAX_COLOURS:
        raise ValueError(f"num_colours={num_colours} must be in [2, {MAX_COLOURS}]")
    if delay < 0:
        raise ValueError(f"delay={delay} must be >= 0")
    if obs_type not in OBS_TYPES:
        raise ValueError(f"obs_type={obs_type!r} must be one of {OBS_TYPES}")
    if image_size < 8:
        raise ValueError(f"image_size={image_size} must be >= 8")


class MatchEnv(gym.Env):
    """Phases 2 and 3 of a visual-match task; subclasses implement phase 1.

    Vector observation (float32): ``[view cells x num_codes | K slots x num_codes | phase one-hot (3)]``
    where ``num_codes = K + 2`` (K colours, apple, wall) and the view block is empty for
    tasks without a view. Image observation: uint8 ``[image_size, image_size, 3]`` (HWC).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}
    view_cells = 0  # cells in the phase-1 egocentric view (0: no view)

    def __init__(
        self,
        *,
        num_colours: int,
        cue_steps: int,
        delay: int,
        apple_reward: float,
        choice: str,
        obs_type: str,
        image_size: int,
        num_actions: int,
        render_mode: str | None = None,
    ) -> None:
        check_task_options(num_colours=num_colours, delay=delay, obs_type=obs_type, image_size=image_size)
        if choice not in CHOICES:
            raise ValueError(f"choice={choice!r} must be one of {CHOICES}")
        if cue_steps < 1:
            raise ValueError(f"cue_steps={cue_steps} must be >= 1")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} must be None or 'rgb_array'")
        self.num_colours, self.cue_steps, self.delay = num_colours, cue_steps, delay
        self.apple_reward, self.choice = float(apple_reward), choice
        self.obs_type, self.image_size = obs_type, image_size
        self.render_mode = render_mode
        self.episode_length = cue_steps + delay + 1
        self.action_space = spaces.Discrete(num_actions)
        if obs_type == "vector":
            size = (self.view_cells + num_colours) * num_codes(num_colours) + NUM_PHASES
            self.observation_space = spaces.Box(0.0, 1.0, (size,), dtype=np.float32)
        else:
            self.observation_space = spaces.Box(0, 255, (image_size, image_size, 3), dtype=np.uint8)
        self._t = 0
        self._cue = 0
        self._apple_slots = np.zeros(delay, dtype=np.int64)
        self._options = np.arange(num_colours)

    @property
    def max_return(self) -> float:
        """Return of a perfect policy: every apple and the match."""
        return 1.0 + self.delay * self.apple_reward

    def phase(self, t: int) -> int:
        """Phase of observation index ``t``."""
        if t < self.cue_steps:
            return CUE
        return DISTRACTOR if t < self.cue_steps + self.delay else CHOICE

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        self._cue = int(self.np_random.integers(self.num_colours))
        self._apple_slots = self.np_random.integers(self.num_colours, size=self.delay)
        self._options = self.np_random.permutation(self.num_colours)
        self._reset_cue_phase()
        return self._observation(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = int(action)
        phase, info = self.phase(self._t), {}
        reward = 0.0
        if phase == CUE:
            self._cue_phase_step(action)
        elif phase == DISTRACTOR:
            reward = self.apple_reward if action == self._apple_slots[self._t - self.cue_steps] else 0.0
        else:
            success = action < self.num_colours and self._chosen_colour(action) == self._cue
            reward, info = float(success), {"success": bool(success)}
        self._t += 1
        terminated = self._t == self.episode_length
        return self._observation(), reward, terminated, False, info

    def _chosen_colour(self, action: int) -> int:
        """The colour a phase-3 action chooses (``action < K``)."""
        return action if self.choice == "colour" else int(self._options[action])

    def render(self) -> np.ndarray | None:
        return self._image() if self.render_mode == "rgb_array" else None

    # Subclass hooks -------------------------------------------------------------

    def _reset_cue_phase(self) -> None:
        """Draw whatever phase 1 needs beyond the cue (called at the end of ``reset``)."""

    def _cue_phase_step(self, action: int) -> None:
        """Apply a phase-1 action."""

    def _cue_slots(self) -> np.ndarray:
        """Slot codes ``[K]`` shown in phase 1."""
        return np.full(self.num_colours, EMPTY, dtype=np.int64)

    def _view(self) -> np.ndarray:
        """Phase-1 view codes ``[rows, cols]`` (``view_cells`` in all); only called when ``view_cells > 0``."""
        raise NotImplementedError

    # Observation ------------------------------------------------------------------

    def _slots(self) -> np.ndarray:
        """Slot codes ``[K]`` at the current step (all ``EMPTY`` after the episode ends)."""
        slots = np.full(self.num_colours, EMPTY, dtype=np.int64)
        if self._t >= self.episode_length:
            return slots
        phase = self.phase(self._t)
        if phase == CUE:
            return self._cue_slots()
        if phase == DISTRACTOR:
            slots[self._apple_slots[self._t - self.cue_steps]] = apple_code(self.num_colours)
            return slots
        return self._options.astype(np.int64)

    def _shows_view(self) -> bool:
        return self.view_cells > 0 and self._t < self.cue_steps

    def _observation(self) -> np.ndarray:
        return self._image() if self.obs_type == "image" else self._vector()

    def _vector(self) -> np.ndarray:
        view = self._view().reshape(-1) if self._shows_view() else np.full(self.view_cells, EMPTY, dtype=np.int64)
        phase = np.zeros(NUM_PHASES, dtype=np.float32)
        if self._t < self.episode_length:
            phase[self.phase(self._t)] = 1.0
        codes = np.concatenate([view, self._slots()])
        return np.concatenate([one_hot_codes(codes, self.num_colours), phase])

    def _image(self) -> np.ndarray:
        grid = self._view() if self._shows_view() else slot_grid(self._slots())
        return paint(grid, self.num_colours, self.image_size)
