"""The run folder: ``runs/<name>/`` with the resolved config, events, checkpoints and a summary.

runs/<name>/config.yaml            the resolved config (what was really run)
runs/<name>/events.out.tfevents.*  TensorBoard (a new file per start or resume)
runs/<name>/checkpoints/ckpt-<env_steps>.pt
runs/<name>/summary.json           final figures, rewritten at every checkpoint (never by poorer ones)
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoints"
_CHECKPOINT = re.compile(r"ckpt-(\d+)\.pt$")

log = logging.getLogger(__name__)


def default_run_name(env_id: str, cell: str, gate: str) -> str:
    """``<env>-<cell>-<gate>-<date>-<time>``, readable in a folder listing and unique per second."""
    env = re.sub(r"[^A-Za-z0-9]+", "_", env_id).strip("_")
    return f"{env}-{cell}-{gate}-{time.strftime('%Y%m%d-%H%M%S')}"


def checkpoint_path(run_dir: Path, env_steps: int) -> Path:
    # Zero-padded so that names also sort by step count.
    return Path(run_dir) / CHECKPOINT_DIR / f"ckpt-{env_steps:012d}.pt"


def checkpoint_env_steps(path: Path) -> int:
    """The environment steps a checkpoint was taken at, read from its name."""
    match = _CHECKPOINT.search(Path(path).name)
    if match is None:
        raise ValueError(f"{path} is not a checkpoint name (ckpt-<env_steps>.pt)")
    return int(match.group(1))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint with the most environment steps, or None when there is none."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    found = [(int(m.group(1)), p) for p in folder.glob("ckpt-*.pt") if (m := _CHECKPOINT.search(p.name))]
    return max(found)[1] if found else None


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    found = sorted(p for p in folder.glob("ckpt-*.pt") if _CHECKPOINT.search(p.name))
    for old in found[:-keep]:
        old.unlink(missing_ok=True)


def write_summary(run_dir: Path, summary: dict[str, Any]) -> bool:
    """Write ``summary.json`` unless the one there saw more; True when written.

    A resumed run that stops before its first update has no episodes of its own: its summary
    must not replace the figures of the run it continues.
    """
    path = Path(run_dir) / SUMMARY_FILE
    old = _read_or_none(path)
    if old is not None and _extent(summary) < _extent(old):
        log.warning("kept %s: it covers %s (env steps, episodes, has a mean return), the new one only %s",
                    path, _extent(old), _extent(summary))  # fmt: skip
        return False
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True))
    tmp.replace(path)  # atomic: a reader never sees half a file
    return True


def _extent(summary: dict[str, Any]) -> tuple[int, int, bool]:
    """How much a summary covers, compared in this order: env steps, episodes, whether it has a mean return."""
    return summary.get("env_steps") or 0, summary.get("episodes") or 0, summary.get("mean_return") is not None


def _read_or_none(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None  # none yet, or a broken one: the new summary replaces it
    return data if isinstance(data, dict) else None


def read_summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / SUMMARY_FILE).read_text())
