"""One progress line at a time, readable in a terminal and in a plain log file (no carriage returns)."""

from __future__ import annotations

import math


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def progress_line(
    env_steps: int, total_env_steps: int, steps_per_s: float, mean_return: float | None, episodes: int, updates: int
) -> str:
    """E.g. ``[ 12.3%] steps 61,440/500,000 | 2,315 steps/s | return 45.20 (37 ep) | updates 120 | ETA 3m09s``."""
    # The last update may overshoot the budget (a batch is T x B steps); the line never says 112 %.
    fraction = min(env_steps / max(total_env_steps, 1), 1.0)
    remaining = max(total_env_steps - env_steps, 0)
    eta = remaining / steps_per_s if steps_per_s > 0 else (0.0 if remaining == 0 else math.inf)
    ret = "n/a" if mean_return is None else f"{mean_return:.2f}"
    return (
        f"[{100 * fraction:5.1f}%] steps {env_steps:,}/{total_env_steps:,} | {steps_per_s:,.0f} steps/s"
        f" | return {ret} ({episodes} ep) | updates {updates:,} | ETA {format_duration(eta)}"
    )
