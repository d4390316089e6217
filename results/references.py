"""The training-free references of a config, cached in a JSON file beside what uses them.

An experiment's report (report/references.json) and a study (its references.json) both need the
reference scorers' metrics on their data, split and protocol. Computing them means preparing the
dataset, so they are cached; the cache is a file a crash, a full disk or a hand may damage:

- it is written atomically (a temporary file renamed into place): a reader never sees half of it;
- it carries the key of what the numbers depend on (`depends_on`: the config's data section,
  model.max_len, eval.repeats and the code that prepares the data and computes the metrics), and
  is used only while that key matches;
- anything else (cut, empty, `{}`, another key, a wrong shape) is rebuilt, never trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from runtime import write_atomic

SPLITS = ("valid", "test")
#: how tables and findings name each reference
REFERENCE_LABEL = {"last_item_text": "reference: last item's text", "popularity": "reference: popularity",
                   "history_then_popularity": "reference: history, then popularity"}
#: the modules whose code decides the reference numbers (besides datasets/, keyed by its own hash)
CODE = ("model.baselines", "model.evaluate", "model.metrics", "model.sequences")
FORMAT = 1


def code_hash() -> str:
    """Hash of the preparing code (datasets.cache.code_hash) and of the modules in CODE."""
    import importlib

    from datasets.cache import code_hash as data_code_hash

    digest = hashlib.sha256(data_code_hash().encode())
    for name in CODE:
        digest.update(Path(importlib.import_module(name).__file__).read_bytes())
    return digest.hexdigest()[:16]


def depends_on(config: Any) -> dict[str, Any]:
    """Everything the references of `config` depend on, as plain JSON values."""
    return {"format": FORMAT, "data": dataclasses.asdict(config.data), "max_len": config.model.max_len,
            "repeats": config.eval.repeats, "code": code_hash()}


def _well_formed(references: Any) -> bool:
    """{split: {scorer: {metric: number}}} for both splits, each with at least one scorer."""
    return (isinstance(references, dict) and set(references) == set(SPLITS)
            and all(isinstance(by_name, dict) and by_name and all(
                isinstance(metrics, dict) and metrics for metrics in by_name.values())
                for by_name in references.values()))


def read_cached(path: Path, key: dict[str, Any]) -> dict | None:
    """The cached references when the file is readable, well formed and made for `key`; else None."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("depends_on") != key:
        return None
    references = saved.get("references")
    return references if _well_formed(references) else None


def cached_references(config: Any, path: Path) -> dict[str, dict[str, dict[str, float]]]:
    """{split: {scorer: metrics}} of `config`'s training-free references: from `path` when it
    holds them for the same key, else computed (the dataset prepared or loaded from its cache)
    and written there. Raises what preparing the data raises (DataError, OSError)."""
    key = depends_on(config)
    found = read_cached(path, key)
    if found is not None:
        return found
    from datasets.prepare import prepare_dataset
    from model.baselines import reference_metrics

    data = prepare_dataset(config.data, progress=False)
    found = {split: reference_metrics(data, split, config.model.max_len, config.eval.repeats)
             for split in SPLITS}
    write_atomic(path, json.dumps({"depends_on": key, "references": found}))
    return found
