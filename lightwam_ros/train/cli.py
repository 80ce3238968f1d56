"""lightwam-train: train Light-WAM on recorded episodes, export a package checkpoint.

    lightwam-train --config config/train/small.yaml [section.key=value ...]
    torchrun --nproc_per_node 2 -m lightwam_ros.train.cli --config FILE.yaml   (DDP)

The config's sections and keys are those of ``lightwam_ros.train.config``; an unknown key fails
before any work.  The run folder (``run.out_dir``) gets dataset_stats.json, train_log.csv,
loss.png, validation PNGs, TensorBoard events, checkpoints/ (resumed automatically) and
export/ (model.safetensors + dataset_stats.json + instructions.safetensors, loadable by
lightwam-policy, lightwam-offline-check and lightwam-sim-eval, and training.json: the resolved
config, the steps and the episodes with the bags they came from).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import torch
import torch.distributed as dist

from lightwam_ros.train.config import TrainConfigError, load_config
from lightwam_ros.train.episodes import EpisodeError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lightwam-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="training config (YAML)")
    parser.add_argument("overrides", nargs="*", help="section.key=value (value parsed as YAML)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
    except TrainConfigError as error:
        print(f"lightwam-train: {error}", file=sys.stderr)
        return 2
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        cuda = torch.cuda.is_available() and config.run.device in ("auto", "cuda")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    from lightwam_ros.train.loop import Trainer  # after the process group: the trainer reads it

    try:
        trainer = Trainer(config)
        exported = trainer.run()
    except (TrainConfigError, EpisodeError, ValueError, FileNotFoundError) as error:
        print(f"lightwam-train: {error}", file=sys.stderr)
        return 2
    finally:
        if distributed:
            dist.destroy_process_group()
    if exported is not None:
        print(f"exported {exported}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
