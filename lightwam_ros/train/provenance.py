"""What an exported package was trained on, written beside it: a package that is committed or
shared must say how to make it again (the resolved config) and which demonstrations it saw (each
episode's file and the bag, and so the simulator seed, it came from)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from safetensors import safe_open

from lightwam_ros.train.config import TrainConfig

PROVENANCE_FILE = "training.json"


def write_provenance(folder: Path, cfg: TrainConfig, step: int, episodes: Sequence[Path]) -> Path:
    """``training.json`` in ``folder``: the config, the step reached and the training episodes."""
    listed = []
    for path in episodes:
        with safe_open(str(path), "np") as handle:
            meta = handle.metadata() or {}
        listed.append({"file": path.name, "source_bag": meta.get("source_bag")})
    out = folder / PROVENANCE_FILE
    record = {"steps": step, "config": cfg.to_dict(), "episodes": listed}
    out.write_text(json.dumps(record, indent=2) + "\n")
    return out
