"""The cluster artifact one (method, n_clusters, dim, seed) setting produces.

Label arrays have n_items + 2 entries so item i reads entry i: entry 0 (padding) and entry
n_items + 1 (mask) are -1, as are noise items. The loss pulls each constrained item's ID
embedding towards `item_targets[i]`, a point in the collaborative (hidden-size) space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ClusterArtifact:
    method: str
    n_clusters: int                 # clusters found (HDBSCAN decides its own)
    dim: int
    labels: np.ndarray              # int64 [n_items + 2]; -1 = padding, mask or noise
    centers: np.ndarray             # float32 [n_clusters, H]: mean of members' PCA vectors
    centers_low: np.ndarray         # float32 [n_clusters, dim]: centers in the clustering space
    item_targets: np.ndarray        # float32 [n_items + 2, H]: what each item is pulled to (0 if none)
    constrained: np.ndarray         # bool [n_items + 2]: items the constraint applies to
    quality: dict[str, Any] = field(default_factory=dict)   # silhouette, sizes, shares, degenerate
    path: str = ""

    def warning(self) -> str | None:
        """A line for people when the clustering is degenerate (see cluster_prep.quality)."""
        from cluster_prep.quality import degenerate_warning

        return degenerate_warning(self.quality)

    def summary(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "n_clusters": int(self.n_clusters),
            "noise_share": float(self.quality.get("noise_share", 0.0)),
            "largest_share": self.quality.get("largest_share"),
            "degenerate": self.quality.get("degenerate"),
            "silhouette": self.quality.get("silhouette"),
            "path": self.path,
        }
