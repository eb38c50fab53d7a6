"""The run folder: ``runs/<name>/`` with the resolved config, events, checkpoints and a summary.

runs/<name>/config.yaml            the resolved config (what was really run)
runs/<name>/events.out.tfevents.*  TensorBoard (a new file per start or resume)
runs/<name>/checkpoints/ckpt-<env_steps>.pt
runs/<name>/summary.json           final figures, rewritten at every checkpoint
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoints"
_CHECKPOINT = re.compile(r"ckpt-(\d+)\.pt$")


def default_run_name(env_id: str, cell: str, gate: str) -> str:
    """``<env>-<cell>-<gate>-<date>-<time>``, readable in a folder listing and unique per second."""
    env = re.sub(r"[^A-Za-z0-9]+", "_", env_id).strip("_")
    return f"{env}-{cell}-{gate}-{time.strftime('%Y%m%d-%H%M%S')}"


def checkpoint_path(run_dir: Path, env_steps: int) -> Path:
    # Zero-padded so that names also sort by step count.
    return Path(run_dir) / CHECKPOINT_DIR / f"ckpt-{env_steps:012d}.pt"


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


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    path = Path(run_dir) / SUMMARY_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True))
    tmp.replace(path)  # atomic: a reader never sees half a file


def read_summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / SUMMARY_FILE).read_text())
