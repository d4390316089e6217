"""The time a long job has left, in the one wording its progress lines use (a search's trials,
a dose-response's runs): minutes up to an hour and a half, hours after. Imports nothing heavy,
so the dose workers, which never start Ray, can use it too."""

from __future__ import annotations


def about_left(seconds: float) -> str:
    """'about 40 min left' (never 0 min) or 'about 2.8 h left'."""
    minutes = seconds / 60
    return f"about {minutes / 60:.1f} h left" if minutes >= 90 else f"about {max(1, round(minutes))} min left"
