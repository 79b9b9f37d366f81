"""Evaluation: metrics (pure functions), per-subject/summary reports, and figures."""
