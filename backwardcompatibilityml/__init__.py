"""Backward-compatible model updates for PyTorch.

Train a new model h2 so that it does not break what the old model h1 got
right: compatibility losses (:mod:`backwardcompatibilityml.loss`), scores
(:mod:`backwardcompatibilityml.scores`), a lambda_c sweep
(:class:`~backwardcompatibilityml.sweep_management.SweepManager`) and an
interactive widget (:class:`backwardcompatibilityml.widgets.CompatibilityAnalysis`).
"""

__version__ = "0.1.0"

import logging as _logging

# A library adds no handler of its own: the application decides what is shown.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())
