"""``gatedrl/ActiveMatch-v0``: walk to find a colour, then remember it across a distractor phase.

The open stand-in for DeepMind Lab's Active Visual Match (Hung et al. 2018). In
phase 1 the agent stands at the centre of a square room of ``room_size`` x
``room_size`` floor cells surrounded by walls and sees only the 3 x 3 cells
around itself; the cue colour lies on one floor cell that is *not* visible from
the start, so the agent has to move to see it. Phases 2 and 3 are those of
``envs.match_base`` (distractor apples, then the K-way choice).
"""

from __future__ import annotations

import numpy as np

from envs.match_base import MatchEnv
from envs.rendering import EMPTY, wall_code

# Phase-1 actions: up, down, left, right (row, column steps). Other actions stay put.
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))
VIEW_RADIUS = 1


class ActiveMatchEnv(MatchEnv):
    """Active visual match: ``max(4, K)`` actions (moves in phase 1, slot picks afterwards).

    With the defaults (5 x 5 room, 9 phase-1 observations, i.e. 8 moves) a fixed tour
    through the four cells diagonal to the centre sees every floor cell, so a perfect
    agent always finds the cue. Episodes last 20 steps; maximum return 1.5.
    """

    view_cells = (2 * VIEW_RADIUS + 1) ** 2

    def __init__(
        self,
        num_colours: int = 4,
        delay: int = 10,
        cue_steps: int = 9,
        room_size: int = 5,
        apple_reward: float = 0.05,
        choice: str = "colour",
        obs_type: str = "vector",
        image_size: int = 24,
        render_mode: str | None = None,
    ) -> None:
        if room_size < 2 * VIEW_RADIUS + 3 or room_size % 2 == 0:
            raise ValueError(f"room_size={room_size} must be odd and >= {2 * VIEW_RADIUS + 3}")
        super().__init__(
            num_colours=num_colours,
            cue_steps=cue_steps,
            delay=delay,
            apple_reward=apple_reward,
            choice=choice,
            obs_type=obs_type,
            image_size=image_size,
            num_actions=max(len(MOVES), num_colours),
            render_mode=render_mode,
        )
        self.room_size = room_size
        centre = room_size // 2
        self._start = (centre, centre)
        # The cue goes on a floor cell outside the starting view (Chebyshev distance > radius).
        self._hidden_cells = [
            (r, c)
            for r in range(room_size)
            for c in range(room_size)
            if max(abs(r - centre), abs(c - centre)) > VIEW_RADIUS
        ]
        self._position = self._start
        self._cue_cell = self._hidden_cells[0]

    def _reset_cue_phase(self) -> None:
        self._position = self._start
        self._cue_cell = self._hidden_cells[int(self.np_random.integers(len(self._hidden_cells)))]

    def _cue_phase_step(self, action: int) -> None:
        if action >= len(MOVES):
            return
        row, col = self._position[0] + MOVES[action][0], self._position[1] + MOVES[action][1]
        if 0 <= row < self.room_size and 0 <= col < self.room_size:
            self._position = (row, col)

    def _view(self) -> np.ndarray:
        """Codes ``[3, 3]`` of the cells around the agent: walls outside the room, the cue, else empty."""
        size = 2 * VIEW_RADIUS + 1
        view = np.full((size, size), EMPTY, dtype=np.int64)
        for i in range(size):
            for j in range(size):
                row, col = self._position[0] + i - VIEW_RADIUS, self._position[1] + j - VIEW_RADIUS
                if not (0 <= row < self.room_size and 0 <= col < self.room_size):
                    view[i, j] = wall_code(self.num_colours)
                elif (row, col) == self._cue_cell:
                    view[i, j] = self._cue
        return view
