"""lightwam-encode-instructions: task instructions -> the instruction cache the policy node reads.

The policy never runs the 5.7B umT5 encoder during control; this offline step encodes each task
once from local weights (a Hugging Face umT5-XXL folder, nothing is downloaded) and adds the
embeddings to a cache file. Existing entries of the output file are kept, so a cache grows task
by task; a cache made by another encoder or with other sizes is refused rather than mixed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from lightwam_ros.model.instructions import (
    DEFAULT_INSTRUCTION_ENCODER,
    DEFAULT_TEXT_LEN,
    InstructionCache,
    encode_instructions_live,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightwam-encode-instructions",
        description="Encode task instructions with a local umT5 into an instruction cache.",
    )
    parser.add_argument(
        "--umt5", required=True, type=Path, help="local umT5 encoder folder (Hugging Face layout)"
    )
    parser.add_argument("--task", action="append", default=[], help="a task instruction (repeat for several)")
    parser.add_argument("--tasks-file", type=Path, help="a text file with one task instruction per line")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        help="instruction cache (.safetensors); extended when it exists",
    )
    parser.add_argument("--device", default="cpu", help="torch device for the encoder")
    parser.add_argument(
        "--encoder-id",
        default=DEFAULT_INSTRUCTION_ENCODER,
        help="identity recorded in the cache; must match the checkpoint's",
    )
    parser.add_argument("--text-len", type=int, default=DEFAULT_TEXT_LEN)
    return parser


def read_tasks(tasks: Sequence[str], tasks_file: Path | None) -> list[str]:
    """The tasks from the command line and the file, stripped, in order, without repeats."""
    lines = list(tasks)
    if tasks_file is not None:
        lines += tasks_file.read_text(encoding="utf-8").splitlines()
    unique = dict.fromkeys(line.strip() for line in lines if line.strip())
    if not unique:
        raise ValueError("no task instructions given (use --task or --tasks-file)")
    return list(unique)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        tasks = read_tasks(args.task, args.tasks_file)
        existing = InstructionCache.load(args.output) if args.output.exists() else None
        cache = encode_instructions_live(
            tasks, args.umt5, device=args.device, encoder_id=args.encoder_id, text_len=args.text_len
        )
        if existing is not None:
            existing.check_compatible(cache.encoder_id, cache.text_len, cache.text_dim)
            for task in cache.tasks():
                existing.add(task, *cache.get(task))
            cache = existing
        cache.save(args.output)
    except (ValueError, OSError, ImportError) as error:
        print(f"lightwam-encode-instructions: {error}", file=sys.stderr)
        return 2
    print(f"{args.output}: {len(cache)} instructions ({', '.join(map(repr, cache.tasks()))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
