"""Dataset preparation: sources -> k-core -> sequences, splits, groups, embeddings; cached.

Note: this package shadows Hugging Face's `datasets` when run from the repository root;
sentence-transformers does not need that package, and tests embed through launch.py to prove it.
"""

from __future__ import annotations

# tuning.config imports datasets.config: load tuning first, or importing `datasets` before
# `tuning` would meet datasets.config half-initialised (a circular import).
import tuning  # noqa: F401  isort: skip
from datasets.cache import load_prepared
from datasets.config import DataConfig
from datasets.errors import DataError
from datasets.pca import pca_reduce
from datasets.prepare import describe, prepare_dataset
from datasets.prepared import PreparedDataset
from datasets.presets import LLMESR_THRESHOLDS

__all__ = ["DataConfig", "DataError", "LLMESR_THRESHOLDS", "PreparedDataset", "describe",
           "load_prepared", "pca_reduce", "prepare_dataset"]
