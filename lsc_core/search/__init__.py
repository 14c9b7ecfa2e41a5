"""Hyperparameter search: a space, a strategy and a budget, turned into ordinary runs.

Two parts, as keras-tuner separates its oracle from its tuner:
- `space`: what to try (spaces, random and grid strategies, plans of trial configs); pure;
- `runner`: how to run it (trials as runs in the store, resume, stop, results).
Both are re-exported here, so callers write `from lsc_core import search; search.plan_values(...)`.
"""
from .runner import *  # noqa: F401,F403
from .space import *  # noqa: F401,F403
