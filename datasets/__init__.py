"""Dataset preparation: sources -> k-core -> sequences, splits, groups, embeddings; cached.

This file imports nothing: `tuning.config` reads `datasets.config`, which must stay cheap, so
callers import from the module that defines a name (`datasets.prepare.prepare_dataset`).

Note: this package shadows Hugging Face's `datasets` when run from the repository root;
sentence-transformers does not need that package, and tests embed through launch.py to prove it.
"""
