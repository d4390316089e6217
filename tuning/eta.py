"""The time a long job has left, in the one wording its progress lines use (a search's trials,
a study's confirmation runs, a dose-response's runs): minutes up to an hour and a half, hours
after. Imports nothing heavy, so the run pools, which never start Ray, can use it too."""

from __future__ import annotations

import math


def about_left(seconds: float) -> str:
    """'about 40 min left' (never 0 min) or 'about 2.8 h left'."""
    minutes = seconds / 60
    return f"about {minutes / 60:.1f} h left" if minutes >= 90 else f"about {max(1, round(minutes))} min left"


def pool_time_left(lengths: list[float], total: int, workers: int, then: int = 0) -> str:
    """The wall time a pool's remaining runs will take, in words: the mean length of the runs done
    so far (each run's whole training time, so the runs a resume continued from their checkpoints,
    which end first, do not make the rest look minutes long), `workers` at a time; `then` runs
    follow this pool (a dose-response's confirmation after its screen), counted alike."""
    if len(lengths) >= total and not then:
        return "done"
    rounds = math.ceil(max(0, total - len(lengths)) / workers) + math.ceil(then / workers)
    return about_left(sum(lengths) / len(lengths) * rounds)
