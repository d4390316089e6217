"""Orchestration: the commands that start searches and train models, as opposed to reading them.

The multi-arm study (`study`: a same-budget search per arm), its confirmation runs (`confirm`:
the best trial of each arm re-run over paired seeds, with its control without ICC), the exact
re-run of a recorded trial (`reproduce`) and ICC's dose-response without search (`dose`); beside
them a study's folder names and claim (`layout`), its cost table (`progress`) and the answer table
over every dose-response (`answers`). They import one another one way only (no cycle:
tests/test_layers.py).

Why a floor of its own inside results/: these modules read experiments through results' reading
modules (load, tables, findings, references, stats) and then train, so they sit above them; they
cannot live in tuning/, which results/ itself builds on. The reading modules never import this
package (tests/test_layers.py), so reading or reporting an experiment never trains or starts Ray.
This file imports nothing.
"""
