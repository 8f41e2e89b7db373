"""Metrics (pure numpy) and the replay / evaluation report."""
