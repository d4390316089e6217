"""User profiles and each user's top-K most similar other users (self-distillation teachers).

Profile = mean text embedding of the user's training items (validation/test targets excluded, so
nothing of the held-out items leaks). Cosine top-K is computed in blocks of users, so memory is
O(block * U) rather than O(U^2): 50k users fit easily.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

BLOCK_FLOATS = 1 << 24   # similarity entries held at once (64 MiB of float32)


def user_profiles(train_users: np.ndarray, train_items: np.ndarray, n_users: int,
                  item_emb: np.ndarray) -> np.ndarray:
    """float32 [U, D]: mean embedding of each user's training items (sparse product, no copies)."""
    counts = sp.csr_matrix((np.ones(train_users.size, dtype=np.float32), (train_users, train_items)),
                           shape=(n_users, item_emb.shape[0]))
    sums = np.asarray(counts @ item_emb, dtype=np.float32)
    lengths = np.maximum(np.bincount(train_users, minlength=n_users), 1).astype(np.float32)
    return sums / lengths[:, None]


def top_k_similar(profiles: np.ndarray, k: int, block_size: int | None = None,
                  device: str = "cpu") -> np.ndarray:
    """int64 [U, k]: most cosine-similar OTHER users, best first (k must be < U), on `device`."""
    n_users = profiles.shape[0]
    if not 0 < k < n_users:
        raise ValueError(f"k={k} must be in [1, {n_users - 1}] for {n_users} users")
    p = torch.from_numpy(np.ascontiguousarray(profiles, dtype=np.float32)).to(device)
    p = torch.nn.functional.normalize(p, dim=1)
    block = block_size or max(1, BLOCK_FLOATS // n_users)
    out = np.empty((n_users, k), dtype=np.int64)
    with torch.no_grad():
        for start in range(0, n_users, block):
            end = min(start + block, n_users)
            sims = p[start:end] @ p.T
            rows = torch.arange(end - start, device=p.device)
            sims[rows, rows + start] = -torch.inf          # never oneself
            out[start:end] = torch.topk(sims, k, dim=1).indices.cpu().numpy()
    return out
