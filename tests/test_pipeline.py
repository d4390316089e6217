"""model.pipeline decides once whether ICC is on; everything below it follows the artifact it
passes (None = off), so a gamma-0 run never builds clusters and never sees them."""

from __future__ import annotations

import pytest
import torch

from model import pipeline
from synthetic_data import cluster_targets, sentinel_dataset
from tuning.config import load_config

HIDDEN = 8
BASE = ["model.hidden_size=8", "model.max_len=6", "model.num_blocks=1", "model.adapter_hidden=16",
        "train.device=cpu", "train.epochs=1", "model.variant=custom"]


@pytest.fixture(scope="module")
def data():
    return sentinel_dataset(n_users=10, pool=16, dim=HIDDEN)


def test_gamma_zero_builds_no_clusters(data, monkeypatch):
    import cluster_prep.build as cluster_build

    def refuse(*args, **kwargs):
        raise AssertionError("clusters built for a run without ICC")

    monkeypatch.setattr(cluster_build, "build_clusters", refuse)
    trainer = pipeline.build_trainer(load_config(None, [*BASE, "model.gamma=0.0"]), data)
    assert trainer.model.icc is None


def test_gamma_above_zero_hands_the_clusters_down(data, monkeypatch):
    import cluster_prep.build as cluster_build

    artifact = cluster_targets(data, HIDDEN)
    monkeypatch.setattr(cluster_build, "build_clusters", lambda *args, **kwargs: artifact)
    trainer = pipeline.build_trainer(load_config(None, [*BASE, "model.gamma=0.5"]), data)
    assert trainer.model.icc is not None
    assert torch.equal(trainer.model.icc.targets, torch.from_numpy(artifact.item_targets).float())


def test_given_clusters_are_dropped_when_icc_is_off(data):
    config = load_config(None, [*BASE, "model.gamma=0.0"])
    trainer = pipeline.assemble_trainer(config.model, config.train, data, cluster_targets(data, HIDDEN))
    assert trainer.model.icc is None
