"""The one exception the evaluation report raises for problems a user can cause."""

from __future__ import annotations


class EvaluationError(Exception):
    """A prediction or ground-truth bag cannot be evaluated (unreadable, no ground truth, no frame in
    common) or the report cannot be written. The message names the bag or folder and what to do."""
