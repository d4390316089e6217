"""Item clusters for the item-cluster constraint: labels, centers and per-item targets."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    'ClusterArtifact': 'cluster_prep.artifact',
    'build_clusters': 'cluster_prep.build',
    'compute_clusters': 'cluster_prep.build',
    'ClusterConfig': 'cluster_prep.config',
    'reduce_embeddings': 'cluster_prep.reduce',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import on first use: `tuning.config` imports this package's config, which must stay cheap."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
