"""Packaging of backwardcompatibilityml: the metadata lives in pyproject.toml (PEP 621).

This shim only lets tools that still call ``setup.py`` build the package.
"""

from setuptools import setup

setup()
