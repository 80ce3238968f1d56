"""What a run shows while it trains: a tqdm bar, a CSV log, TensorBoard events (when the
``tensorboard`` package is installed) and loss-curve PNGs."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tqdm import tqdm

LOG_FILE = "train_log.csv"
LOG_FIELDS = (
    "step",
    "epoch",
    "loss",
    "action_loss",
    "video_loss",
    "lr",
    "grad_norm",
    "samples_per_s",
    "val_action_mae",
)


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class Progress:
    def __init__(self, out_dir: Path, total: int, start: int, bar: bool, tensorboard: bool) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOG_FILE
        fresh = not self.path.is_file() or start == 0
        if fresh:
            self.path.write_text(",".join(LOG_FIELDS) + "\n")
        else:  # a resumed run drops rows logged after its checkpoint
            rows = _read_rows(self.path)
            kept = [r for r in rows if int(r["step"]) <= start]
            _write_rows(self.path, kept)
        self._bar = tqdm(total=total, initial=start, disable=not bar, dynamic_ncols=True)
        self._writer = None
        if tensorboard and tensorboard_available():
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=start)

    def update(self, row: dict[str, Any], advanced: int) -> None:
        self._bar.update(advanced)
        shown = {
            k: f"{row[k]:.4g}"
            for k in ("loss", "action_loss", "video_loss", "lr", "samples_per_s")
            if row.get(k) is not None
        }
        self._bar.set_postfix(shown, refresh=False)
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, LOG_FIELDS).writerow({k: row.get(k, "") for k in LOG_FIELDS})
        if self._writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._writer.add_scalar(f"train/{key}", value, row["step"])

    def close(self) -> None:
        self._bar.close()
        if self._writer is not None:
            self._writer.close()
        plot_losses(self.path, self.out_dir / "loss.png")


def _read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, LOG_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def plot_losses(log: Path, png: Path) -> None:
    """Loss curves (total, action, video; log scale) and validation error from the CSV log."""
    rows = _read_rows(log)
    if not rows:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [int(r["step"]) for r in rows]
    for key in ("loss", "action_loss", "video_loss"):
        points = [(s, float(r[key])) for s, r in zip(steps, rows, strict=True) if r[key] not in ("", None)]
        if points and any(v > 0 for _, v in points):
            left.plot(*zip(*points, strict=True), label=key)
    left.set_yscale("log")
    left.set_xlabel("step")
    left.set_title("training loss")
    left.legend()
    val = [(s, float(r["val_action_mae"])) for s, r in zip(steps, rows, strict=True) if r["val_action_mae"]]
    if val:
        right.plot(*zip(*val, strict=True), marker="o")
    right.set_xlabel("step")
    right.set_title("held-out action MAE (de-normalised)")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
