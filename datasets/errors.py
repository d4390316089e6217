"""The one error type of dataset preparation."""

from __future__ import annotations


class DataError(ValueError):
    """Bad dataset input: a missing file, a malformed line, a wrong matrix shape, an empty k-core.

    Messages name the file (and line, or shape) and what was expected, so a user can fix the input.
    """
