"""Options of dataset preparation (the `data:` section of a config file)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from settings import setting

SOURCES = ("ml-100k", "amazon-scientific", "amazon-beauty", "llmesr", "csv")
#: the k-core a source gets when data.user_core / data.item_core are 0 (not set): 5 (docs/design.md,
#: Data), except llmesr: LLM-ESR's inter.txt files are already filtered by its own
#: preprocessing (Yelp: users >= 3, items >= 1 interactions), so filtering again would change them.
#: amazon-beauty's file is already the published 5-core: 5 keeps all 198,502 interactions (tested),
#: so the default both matches the papers' split and filters a user's own copy the same way.
SOURCE_CORES = {"ml-100k": 5, "amazon-scientific": 5, "amazon-beauty": 5, "llmesr": 1, "csv": 5}
EMBEDDERS = ("minilm", "file")
DEVICES = ("auto", "cpu", "cuda")
TAIL_USER_PRESETS = ("", "yelp", "beauty", "fashion")
#: the options that say where inputs and the cache lie on this machine, not what the data is
LOCATIONS = ("cache_dir", "data_root", "path", "item_text_path", "embedding_path")


@dataclass
class DataConfig:
    name: str = setting("ml-100k", "dataset source", choices=SOURCES)
    data_root: str = setting("../shared/data", "folder holding amazon-scientific/, amazon-beauty/ and llmesr-yelp/")
    path: str = setting("", "llmesr: folder with inter.txt; csv: interaction CSV file")
    item_text_path: str = setting("", "csv: item text CSV (item, text columns)")
    embedding_path: str = setting("", "a user's item embedding matrix (.npy; .pkl needs allow_pickle)")
    allow_pickle: bool = setting(False, "permit loading a .pkl embedding matrix (runs pickle code)")
    cache_dir: str = setting(".cache/icc-tune", "where prepared datasets are cached")
    user_core: int = setting(0, "iterative k-core: minimum interactions per user (0 = the source's "
                             "default: 5; llmesr 1, its files are already filtered)", low=0)
    item_core: int = setting(0, "iterative k-core: minimum interactions per item (0 = the source's "
                             "default: 5; llmesr 1, its files are already filtered)", low=0)
    keep_duplicates: bool = setting(False, "keep exact duplicate (user, item, timestamp) rows, for logs "
                                    "where repeats are real events (default: drop and count them)")
    tail_item_share: float = setting(0.8, "share of least popular items called tail", low=0, high=1, low_open=True, high_open=True)
    tail_user_share: float = setting(0.8, "share of shortest users called tail (when no threshold)", low=0, high=1, low_open=True, high_open=True)
    tail_user_threshold: int = setting(0, "users with at most this many training items are tail (0: use the share)", low=0)
    tail_user_preset: str = setting("", "LLM-ESR's per-dataset tail-user threshold (overrides the two above; '' = off)", choices=TAIL_USER_PRESETS)
    embedder: str = setting("minilm", "item text embedder: minilm, or file (data.embedding_path); llmesr always uses file", choices=EMBEDDERS)
    embed_batch_size: int = setting(128, "texts per embedding batch", low=1)
    embed_device: str = setting("auto", "device of the text embedder (auto = CUDA when present)", choices=DEVICES)
    pca_dim: int = setting(64, "PCA size of the ID-view initialisation (= model hidden size)", low=1)
    n_similar_users: int = setting(10, "similar users kept per user (self-distillation teachers)", low=1)
    n_eval_negatives: int = setting(100, "fixed sampled negatives per user for the sampled protocol", low=1)
    seed: int = setting(42, "seed for negatives and PCA")


def resolve_cores(cfg: DataConfig) -> DataConfig:
    """`cfg` as its source uses it: unset (0) k-core fields replaced by the source's default
    (SOURCE_CORES), and embedder "file" for llmesr, whose files carry no text to embed (so
    meta.json says what was used, and both spellings share one cache)."""
    default = SOURCE_CORES.get(cfg.name, 5)
    embedder = "file" if cfg.name == "llmesr" else cfg.embedder
    return replace(cfg, user_core=cfg.user_core or default, item_core=cfg.item_core or default,
                   embedder=embedder)


def unused_options(cfg: DataConfig) -> tuple[str, ...]:
    """Options that change nothing under `cfg`'s others (kept out of the cache key, so equivalent
    configs share one prepared dataset): a tail-user preset or threshold decides the tail users
    alone, and the preset decides the threshold too."""
    if cfg.tail_user_preset:
        return ("tail_user_share", "tail_user_threshold")
    return ("tail_user_share",) if cfg.tail_user_threshold > 0 else ()
