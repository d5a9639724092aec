"""Backward-compatible model updates for PyTorch.

Train a new model h2 so that it does not break what the old model h1 got
right: compatibility losses (:mod:`backwardcompatibilityml.loss`), scores
(:mod:`backwardcompatibilityml.scores`), a lambda_c sweep
(:class:`~backwardcompatibilityml.sweep_management.SweepManager`) and an
interactive widget (:class:`backwardcompatibilityml.widgets.CompatibilityAnalysis`).
"""

__version__ = "0.1.0"
