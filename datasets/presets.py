"""LLM-ESR's per-dataset group thresholds, from its public run scripts (liuqidong07/LLM-ESR,
experiments/{yelp,beauty,fashion}.bash: `--ts_user` and `--ts_item`).

LLM-ESR calls a user short when the length of the test input (training part + validation item)
is below ts_user, i.e. when the training length <= ts_user - 2; that is the threshold returned
here, in our convention (`tail_users = train_len <= threshold`). Its `ts_item` is an absolute
popularity threshold; we keep the share-based tail items of docs/design.md and record ts_item only
for reference.
"""

from __future__ import annotations

from datasets.errors import DataError

LLMESR_THRESHOLDS: dict[str, dict[str, int]] = {
    "yelp": {"ts_user": 12, "ts_item": 13},
    "beauty": {"ts_user": 9, "ts_item": 4},
    "fashion": {"ts_user": 3, "ts_item": 4},
}


def tail_user_threshold(preset: str) -> int:
    """Our `tail_user_threshold` (max training length of a tail user) for an LLM-ESR preset."""
    try:
        return max(LLMESR_THRESHOLDS[preset]["ts_user"] - 2, 1)
    except KeyError:
        raise DataError(f"unknown tail-user preset {preset!r}; known: {', '.join(LLMESR_THRESHOLDS)}") from None
