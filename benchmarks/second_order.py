"""Second order against first order: iterations and evaluations to reach loss - min < 1e-6.

Run from the repository root: ``python benchmarks/second_order.py``.

The problems are ``tests/problems.py``'s ill-conditioned quadratic (10 dimensions, curvatures
1..100) and Rosenbrock's function from (-1.2, 1), in float32. The first-order methods use the
settings tuned in ``tests/test_convergence.py`` (a grid search of about 3x steps; the rates
are stated in the table). L-BFGS and Newton-CG use their defaults with a line search, and
:func:`gradtx.value_and_grad_from_state`, so a step whose first trial is accepted costs one
evaluation of the objective and its gradient.

Columns: ``iters`` the first iteration after which ``loss - min < 1e-6`` (for the first-order
methods, ``stays`` the first from which it held for the rest of the budget); ``f+g`` the
evaluations of the value and gradient; ``hvp`` Hessian-vector products (each about two
gradients). Newton-CG's default CG tolerance, Nocedal and Wright's forcing sequence
min(0.5, sqrt|g|) relative, is loose far from the minimum: on Rosenbrock its early steps are
little better than scaled gradients (scipy's Newton-CG, with the same rule, takes 85
iterations there); a fixed 1e-3 needs fewer iterations and fewer products. Seed 003's point
shows in the numbers: the second-order methods need one to two
orders of magnitude fewer iterations, but each iteration costs more, per step in line-search
trials and Hessian-vector products, and in memory (L-BFGS keeps 2 x 10 copies of the params).
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import gradtx  # noqa: E402
from tests import problems  # noqa: E402

TOL = 1e-6


@dataclasses.dataclass(frozen=True)
class Result:
    problem: str
    method: str
    setting: str
    iters: int | None  # first iteration with loss - min < TOL (None: not within the budget)
    stays: int | None  # first iteration from which it held to the end of the run
    evals: int | None  # value-and-gradient evaluations up to `iters`
    hvps: int | None  # Hessian-vector products up to `iters` (Newton-CG only)
    final: float  # loss - min at the end of the run


def _first_below(excess: np.ndarray) -> tuple[int | None, int | None]:
    below = excess < TOL
    if not below.any():
        return None, None
    first = int(np.argmax(below)) + 1
    above = np.nonzero(~below)[0]
    stays = 1 if above.size == 0 else int(above[-1]) + 2
    return first, (stays if stays <= below.size else None)


def first_order(problem, name: str, tx, setting: str, steps: int) -> Result:
    """Runs ``steps`` updates in one jitted scan; one gradient evaluation per iteration."""

    def step(carry, _):
        params, state = carry
        grads = jax.grad(problem.loss)(params)
        updates, state = tx.update(grads, state, params)
        params = gradtx.apply_updates(params, updates)
        return (params, state), problem.loss(params)

    @jax.jit
    def run(params):
        return jax.lax.scan(step, (params, tx.init(params)), None, length=steps)[1]

    excess = np.asarray(run(problem.init), np.float64) - problem.minimum
    first, stays = _first_below(excess)
    return Result(problem.name, name, setting, first, stays, first, None, float(excess[-1]))


def second_order(problem, name: str, tx, setting: str, max_iters: int) -> Result:
    """Runs until ``loss - min < TOL`` (or ``max_iters``), counting evaluations and products."""
    value_and_grad = gradtx.value_and_grad_from_state(problem.loss)

    def counters(state):
        trials, products = 0, 0
        for node in jax.tree.leaves(state, is_leaf=_is_info):
            if isinstance(node, _LINESEARCH_INFOS):
                trials += node.num_linesearch_steps
            if isinstance(node, gradtx._curvature.newton.CGInfo):
                products += node.num_steps
        return jnp.asarray(trials), jnp.asarray(products)

    @jax.jit
    def step(params, state):
        value, grad = value_and_grad(params, state=state)
        updates, state = tx.update(
            grad, state, params, value=value, grad=grad, value_fn=problem.loss
        )
        params = gradtx.apply_updates(params, updates)
        return params, state, problem.loss(params), *counters(state)

    params, state = problem.init, tx.init(problem.init)
    evals, hvps, excess = 1, 0, np.inf  # the first value and gradient
    for it in range(1, max_iters + 1):
        params, state, loss, trials, products = step(params, state)
        evals += int(trials)
        hvps += int(products)
        excess = float(loss) - problem.minimum
        if excess < TOL:
            return Result(problem.name, name, setting, it, None, evals, hvps or None, excess)
    return Result(problem.name, name, setting, None, None, None, None, excess)


_LINESEARCH_INFOS = (
    gradtx._curvature.linesearch.BacktrackingLinesearchInfo,
    gradtx._curvature.linesearch.ZoomLinesearchInfo,
)


def _is_info(x) -> bool:
    return isinstance(x, (*_LINESEARCH_INFOS, gradtx._curvature.newton.CGInfo))


# The tuned rows of tests/test_convergence.py (see the comments there).
FIRST_ORDER: dict[str, list[tuple[str, Callable[[], gradtx.GradientTransformation], str, int]]] = {
    "quadratic": [
        ("gradient descent", lambda: gradtx.sgd(0.019), "lr 0.019 (~2/(L+mu))", 1000),
        ("momentum", lambda: gradtx.sgd(0.02, momentum=0.67), "lr 0.02, heavy ball 0.67", 1000),
        ("adam", lambda: gradtx.adam(0.03), "lr 0.03", 1000),
    ],
    "rosenbrock": [
        ("gradient descent", lambda: gradtx.sgd(1.5e-3), "lr 1.5e-3", 20000),
        ("momentum", lambda: gradtx.sgd(1e-3, momentum=0.9), "lr 1e-3, heavy ball 0.9", 20000),
        (
            "adam",
            lambda: gradtx.adam(gradtx.cosine_decay_schedule(0.05, 5000)),
            "lr 0.05 cosine-decayed over 5000",
            5000,
        ),
    ],
}


def _zoom():
    return gradtx.scale_by_zoom_linesearch(max_linesearch_steps=15, initial_guess_strategy="one")


SECOND_ORDER: list[tuple[str, Callable[[], gradtx.GradientTransformation], str]] = [
    ("L-BFGS", lambda: gradtx.lbfgs(), "memory 10, zoom (strong Wolfe)"),
    (
        "L-BFGS",
        lambda: gradtx.lbfgs(
            linesearch=gradtx.scale_by_backtracking_linesearch(
                max_backtracking_steps=30, store_grad=True
            ),
            skip_curvature_failures=True,
        ),
        "memory 10, backtracking (Armijo), L-BFGS-B's pair rule",
    ),
    ("Newton-CG", lambda: gradtx.newton_cg(linesearch=_zoom()), "zoom; CG tol min(.5,sqrt|g|)"),
    ("Newton-CG", lambda: gradtx.newton_cg(tol=1e-3, linesearch=_zoom()), "zoom; CG tol 1e-3"),
]


def run_all(max_iters: int = 200, second=SECOND_ORDER) -> list[Result]:
    """Every first-order row and the ``second`` rows, on both problems."""
    results = []
    for key in problems.PROBLEMS:
        problem = problems.get(key)
        for name, make, setting, steps in FIRST_ORDER[key]:
            results.append(first_order(problem, name, make(), setting, steps))
        for name, make, setting in second:
            results.append(second_order(problem, name, make(), setting, max_iters))
    return results


def table(results: list[Result]) -> str:
    def show(x):
        return "-" if x is None else str(x)

    header = (
        f"| {'problem':<10} | {'method':<16} | {'setting':<33} | iters | stays |   f+g |  hvp |"
    )
    lines = [header, "|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|"]
    for r in results:
        lines.append(
            f"| {r.problem:<10} | {r.method:<16} | {r.setting:<33} | {show(r.iters):>5} "
            f"| {show(r.stays):>5} | {show(r.evals):>5} | {show(r.hvps):>4} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(f"Iterations to loss - min < {TOL:g} (float32; jax {jax.__version__})\n")
    print(table(run_all()))
