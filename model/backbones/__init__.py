"""Sequence encoders, one per file, found by name through `backbone_class`."""

from __future__ import annotations

from model.backbones.bert4rec import Bert4Rec
from model.backbones.gru4rec import GRU4Rec
from model.backbones.sasrec import SASRec

BACKBONES = {"sasrec": SASRec, "bert4rec": Bert4Rec, "gru4rec": GRU4Rec}


def backbone_class(name: str) -> type:
    """The encoder class called `name`; a clear error names the known ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"model.backbone: got {name!r}; allowed: {', '.join(BACKBONES)}") from None


__all__ = ["BACKBONES", "Bert4Rec", "GRU4Rec", "SASRec", "backbone_class"]
