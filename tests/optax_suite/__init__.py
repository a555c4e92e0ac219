"""optax's own test suite, run against gradtx.

optax's wheel ships its tests (``optax/_src/*_test.py``, ``optax/transforms/*_test.py``, ...).
This package runs them from the installed optax, never copying them: each test module is loaded
with its optax imports replaced by views in which every public optax name that gradtx also has
resolves to gradtx's object. Each test is classified by the public names it used while it ran
(gradtx's only, both libraries', optax's only) and its outcome recorded.

The full run (about 8 minutes on 2 cores)::

    python -m tests.optax_suite --out optax_suite.json

``tests/test_optax_suite.py`` runs a smoke subset in the ordinary suite.
"""
