"""Registry of source adapters: name -> module with `files(cfg)` and `load(cfg, files)`."""

from __future__ import annotations

from types import ModuleType

from datasets import source_beauty, source_csv, source_llmesr, source_ml100k, source_scientific
from datasets.errors import DataError

SOURCES: dict[str, ModuleType] = {
    "ml-100k": source_ml100k,
    "amazon-scientific": source_scientific,
    "amazon-beauty": source_beauty,
    "llmesr": source_llmesr,
    "csv": source_csv,
}


def get_source(name: str) -> ModuleType:
    try:
        return SOURCES[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(SOURCES)}") from None
