"""Item clusters for the item-cluster constraint: labels, centers and per-item targets.

This file imports nothing: `tuning.config` reads `cluster_prep.config`, which must stay cheap, so
callers import from the module that defines a name (`cluster_prep.build.build_clusters`).
"""
