"""Doctest configuration for the package's docstring examples."""

import jax
import pytest


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace["jax"] = jax
