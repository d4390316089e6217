"""On-disk cache of cluster artifacts: one folder per setting, written atomically.

Folder: <cache_dir>/clusters/<key>/ with arrays.npz and quality.json. Writes go to a temporary
folder beside it that is renamed into place, so a crash never leaves a half-written artifact that
a later run would read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from cluster_prep.artifact import ClusterArtifact
from runtime import write_folder_atomic

FORMAT_VERSION = 2   # 2: quality gained largest_share and degenerate
ARRAYS = ("labels", "centers", "centers_low", "item_targets", "constrained")


def digest(array: np.ndarray) -> str:
    a = np.ascontiguousarray(array)
    return hashlib.sha256(str((a.dtype.str, a.shape)).encode() + a.tobytes()).hexdigest()


def cache_key(parts: dict[str, Any]) -> str:
    text = json.dumps({"format": FORMAT_VERSION, **parts}, sort_keys=True, default=str)
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
