"""``gatedrl/PassiveMatch-v0``: remember a colour shown at the start across a distractor phase.

The open stand-in for DeepMind Lab's Passive Visual Match (Hung et al. 2018): in
phase 1 every slot shows the cue colour (the "room is coloured"); the agent needs
no action to see it. Phases 2 and 3 are those of ``envs.match_base``.
"""

from __future__ import annotations

import numpy as np

from envs.match_base import MatchEnv


class PassiveMatchEnv(MatchEnv):
    """Passive visual match with ``K = num_colours`` colours and actions ``0..K-1``.

    Actions pick a slot in phase 2 (the apple) and, in phase 3, name a colour
    (``choice="colour"``, the default) or pick the slot showing it (``choice="slot"``,
    a relational match that takes a small LSTM agent far longer to learn). Defaults give 14-step episodes (3 cue + 10 distractor + 1 choice); the maximum
    return is ``1 + delay * apple_reward`` (1.5), a memoryless policy's best is
    ``1/K + delay * apple_reward`` (0.75).
    """

    def __init__(
        self,
        num_colours: int = 4,
        delay: int = 10,
        cue_steps: int = 3,
        apple_reward: float = 0.05,
        choice: str = "colour",
        obs_type: str = "vector",
        image_size: int = 24,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            num_colours=num_colours,
            cue_steps=cue_steps,
            delay=delay,
            apple_reward=apple_reward,
            choice=choice,
            obs_type=obs_type,
            image_size=image_size,
            num_actions=num_colours,
            render_mode=render_mode,
        )

    def _cue_slots(self) -> np.ndarray:
        return np.full(self.num_colours, self._cue, dtype=np.int64)
