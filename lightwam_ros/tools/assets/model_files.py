"""Model files a run uses: a checkpoint and its instruction cache, or a random-weight tiny
package built once per embodiment into the user's cache (for tests, demos and shadow runs).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lightwam_ros.policy.embodiment import embodiment_file
from lightwam_ros.ros.param_files import PACKAGE

_TINY_SOURCES = ("tools/assets/make_tiny.py", "model/*.py", "config/embodiments/*.yaml")


@dataclass(frozen=True)
class ModelFiles:
    checkpoint: Path
    instruction_cache: Path
    tiny: bool  # a random-weight package: arbitrary motions


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / PACKAGE


def ensure_tiny_package(embodiment: str, cache_dir: Path | None = None) -> ModelFiles:
    """The tiny random package of an embodiment, built on first use and reused afterwards.

    Its folder name carries a fingerprint of the code and files that shape it, so a package made
    by an older version is never loaded by a newer one.  It is built in a scratch folder and
    renamed into place, so concurrent bring-ups never see a half-written package.
    """
    from lightwam_ros.tools.assets import make_tiny  # imports torch: only when a package is needed

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / f"tiny-{embodiment}-{_tiny_fingerprint(embodiment)}"
    files = ModelFiles(folder / make_tiny.CHECKPOINT_NAME, folder / make_tiny.INSTRUCTIONS_NAME, tiny=True)
    if files.checkpoint.is_file() and files.instruction_cache.is_file():
        return files
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    try:
        make_tiny.make_tiny_package(embodiment, scratch)
        try:
            scratch.rename(folder)
        except OSError:  # built concurrently by another bring-up: keep theirs
            if not files.checkpoint.is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return files


def tiny_with_instruction(model: ModelFiles, instruction: str) -> ModelFiles:
    """A tiny package whose instruction cache also holds ``instruction`` (a simulator's task):
    its stand-in embedding is added to a copy beside the package's own cache, named by the
    instruction, so concurrent runs never see a half-written file.  Real packages are returned
    unchanged: their cache must hold the task, and the policy says so when it does not."""
    from lightwam_ros.model.instructions import InstructionCache
    from lightwam_ros.tools.assets.make_tiny import standin_embedding

    if not model.tiny:
        return model
    cache = InstructionCache.load(model.instruction_cache)
    if instruction in cache:
        return model
    digest = hashlib.sha256(instruction.encode("utf-8")).hexdigest()[:12]
    path = model.instruction_cache.with_name(f"instructions-{digest}.safetensors")
    if not path.is_file():
        cache.add(instruction, *standin_embedding(instruction, cache.text_len, cache.text_dim))
        scratch = path.with_name(f".{path.name}.{os.getpid()}")
        cache.save(scratch)
        scratch.replace(path)
    return ModelFiles(model.checkpoint, path, tiny=True)


def _tiny_fingerprint(embodiment: str) -> str:
    """The package's code and shipped embodiments, and the embodiment's own file (it may live
    outside the package, in $LIGHTWAM_EMBODIMENT_PATH)."""
    package = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    paths = [path for pattern in _TINY_SOURCES for path in sorted(package.glob(pattern))]
    for path in [*paths, embodiment_file(embodiment)]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]
