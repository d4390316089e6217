"""Dataset preparation: sources -> k-core -> sequences, splits, groups, embeddings; cached.

Note: this package shadows Hugging Face's `datasets` when run from the repository root;
sentence-transformers does not need that package, and tests embed through launch.py to prove it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    'load_prepared': 'datasets.cache',
    'DataConfig': 'datasets.config',
    'DataError': 'datasets.errors',
    'pca_reduce': 'datasets.pca',
    'describe': 'datasets.prepare',
    'prepare_dataset': 'datasets.prepare',
    'PreparedDataset': 'datasets.prepared',
    'LLMESR_THRESHOLDS': 'datasets.presets',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import on first use: `tuning.config` imports this package's config, which must stay cheap."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
