"""On-disk cache of cluster artifacts: one folder per setting, written atomically.

Folder: <cache_dir>/clusters/<key>/ with arrays.npz and quality.json. The key covers the setting,
the data, the collaborative space and the code that makes an artifact (`code_hash`: every module
of this package but the cache plumbing, hashed as the data cache hashes its own), so editing the
clustering or its targets never serves an artifact older code made. Writes go to a temporary
folder beside it that is renamed into place, so a crash never leaves a half-written artifact that
a later run would read.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from cluster_prep.artifact import ClusterArtifact
from datasets.cache import modules_hash
from runtime import write_folder_atomic

FORMAT_VERSION = 2   # 2: quality gained largest_share and degenerate
ARRAYS = ("labels", "centers", "centers_low", "item_targets", "constrained")
PACKAGE = Path(__file__).resolve().parent
#: modules of this package that make nothing (exports, options, the cache itself); every other
#: module's code is part of the key
NOT_CLUSTERING = ("__init__.py", "cache.py", "config.py")


def clustering_modules(folder: Path = PACKAGE) -> list[Path]:
    """The modules whose code decides what a cluster artifact holds."""
    return sorted(p for p in folder.glob("*.py") if p.name not in NOT_CLUSTERING)


def code_hash(folder: Path | None = None) -> str:
    """Hash of the clustering modules' code in `folder` (default: this package, read once)."""
    return _package_code_hash() if folder is None else modules_hash(clustering_modules(folder))


@functools.lru_cache(maxsize=1)
def _package_code_hash() -> str:
    return modules_hash(clustering_modules(PACKAGE))


def digest(array: np.ndarray) -> str:
    a = np.ascontiguousarray(array)
    return hashlib.sha256(str((a.dtype.str, a.shape)).encode() + a.tobytes()).hexdigest()


def cache_key(parts: dict[str, Any]) -> str:
    text = json.dumps({"format": FORMAT_VERSION, "code": code_hash(), **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def load(folder: Path) -> ClusterArtifact | None:
    """The artifact stored in `folder`, or None when there is none (yet)."""
    npz, qfile = folder / "arrays.npz", folder / "quality.json"
    if not (npz.is_file() and qfile.is_file()):
        return None
    with np.load(npz) as z:
        arrays = {k: z[k] for k in ARRAYS}
    info = json.loads(qfile.read_text())
    return ClusterArtifact(method=info["method"], n_clusters=int(info["n_clusters"]),
                           dim=int(info["dim"]), quality=info["quality"], path=str(folder), **arrays)


def save(artifact: ClusterArtifact, folder: Path) -> ClusterArtifact:
    """Write the artifact to `folder` atomically; return it with `path` set.

    When another process finished the same folder first, its copy is kept and returned.
    """
    def fill(tmp: Path) -> None:
        np.savez(tmp / "arrays.npz", **{k: getattr(artifact, k) for k in ARRAYS})
        info = {"method": artifact.method, "n_clusters": artifact.n_clusters,
                "dim": artifact.dim, "quality": artifact.quality}
        (tmp / "quality.json").write_text(json.dumps(info, indent=1))

    write_folder_atomic(folder, fill, lambda done: load(done) is not None)
    artifact.path = str(folder)
    return artifact
