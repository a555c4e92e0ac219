"""How each gradtx optimizer is run by the zoo benchmarks: one table, read by
``python -m benchmarks.zoo`` (the leaderboard) and ``python -m benchmarks.zoo_digits`` (gradtx
against optax on the digits MLP).

A :class:`Spec` says everything a training loop needs to know about an optimizer, so that the
loops have no per-optimizer cases: its family, how to build it at a learning rate (the factory's
arguments beyond the rate, or a builder for optimizers that wrap another), the grid of learning
rates, which hyperparameter the grid sets, what ``update`` needs beyond the gradient, and how to
get the params to evaluate. ``EXCLUDED`` lists optimizers of the table that are not run, with
the reason; a name of the table that is neither in gradtx nor excluded stops the leaderboard.
"""

from __future__ import annotations

import inspect
import os
import pathlib
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

import jax

import gradtx

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEED = 0
SAM_RHO = 0.05

# the keyword arguments a training step can give ``update``, and what each is
EXTRAS = {
    "value": "the mini-batch's loss",
    "grad": "the mini-batch's gradient",
    "value_fn": "the mini-batch's loss as a function of the params",
    "obj_fn": "the mini-batch's loss as a function of the params",
}


@dataclass(frozen=True)
class Spec:
    """How an optimizer is run.

    ``family``: the group it is plotted and listed with. ``grid``: three learning rates around
    the method's usual default (the paper's, or PyTorch's/optax's documented one); the
    leaderboard adds one more at each end, a step of the same ratio. ``kwargs``: the factory's
    arguments beyond the learning rate. ``build(module, lr)``: for an optimizer that wraps
    another (None: ``module.<name>(lr, **kwargs)``, ``module`` being gradtx or optax); it
    returns None where ``module`` lacks a piece. ``needs``: the gradtx names it is made of
    (default: its own name). ``key``: the hyperparameter the grid sets (as
    :func:`gradtx.hyperparams` names it). ``extras``: keys of ``EXTRAS`` that ``update`` needs.
    ``eval_params``: a gradtx function ``(state, params) -> params`` giving the params to
    evaluate (None: the params themselves). ``per_example``: ``update`` takes per-example
    gradients (a leading axis of the batch size) instead of the mini-batch's mean gradient.
    ``budget``: factory arguments that keep the leaderboard within its time on a CPU (a costly
    refresh made rarer); ``zoo_digits`` runs without them, at the defaults.
    """

    family: str
    grid: tuple[float, ...]
    kwargs: dict = field(default_factory=dict)
    build: Callable[[ModuleType, float], object] | None = None
    needs: tuple[str, ...] = ()
    key: str = "learning_rate"
    extras: tuple[str, ...] = ()
    eval_params: str | None = None
    per_example: bool = False
    budget: dict = field(default_factory=dict)


def lookup(module: ModuleType, name: str):
    """``module.<name>``, or ``module.contrib.<name>`` (optax keeps many there), or None."""
    found = getattr(module, name, None)
    return found if found is not None else getattr(getattr(module, "contrib", None), name, None)


def _wrapping(wrapper: str, base: str, **base_kwargs):
    """A builder for ``wrapper(base(lr, **base_kwargs))``."""

    def build(module, lr):
        outer, inner = lookup(module, wrapper), lookup(module, base)
        return None if outer is None or inner is None else outer(inner(lr, **base_kwargs))

    build.__doc__ = f"{wrapper}({base}(learning_rate))"
    return build


def _sam(module, lr):
    """sam(adamw(learning_rate)), ascent rho g / ||g|| with rho 0.05, sync_period 2.

    Foret et al.'s SAM around AdamW, at the paper's rho; every other call is the ascent step.
    """
    sam, normalize = lookup(module, "sam"), lookup(module, "normalize_by_update_norm")
    if sam is None or normalize is None:
        return None
    ascent = module.chain(normalize(eps=0.0), module.sgd(SAM_RHO))
    return sam(module.adamw(lr), ascent, sync_period=2)


def describe(spec: Spec) -> str:
    """What the optimizer runs with besides its defaults and the learning rate ("" if nothing)."""
    parts = [spec.build.__doc__.splitlines()[0]] if spec.build is not None else []
    parts += [f"{k}={v!r}" for k, v in {**spec.kwargs, **spec.budget}.items()]
    return "; ".join(parts)


def make(module: ModuleType, name: str, spec: Spec, lr: float, budget: bool = False):
    """The optimizer ``name`` of ``module`` (gradtx or optax) at learning rate ``lr`` (with the
    spec's ``budget`` arguments if asked), or None where ``module`` does not have it."""
    if spec.build is not None:
        return spec.build(module, lr)
    fn = lookup(module, name)
    return None if fn is None else fn(lr, **spec.kwargs, **(spec.budget if budget else {}))


# families, in the order they are shown
SGD = "SGD and momentum"
ADAM = "Adam and its variants"
ADAPTIVE = "per-coordinate adaptive"
LAYERWISE = "layer-wise normalized"
SIGN = "sign"
MATRIX = "matrix preconditioners"
CURVATURE = "curvature, line search, sharpness"
FREE = "schedule- and learning-rate-free"
DESCENDANTS = "Adam descendants (2022 on)"
FAMILIES = (SGD, ADAM, ADAPTIVE, LAYERWISE, SIGN, MATRIX, CURVATURE, FREE, DESCENDANTS)

_ADAM = (3e-4, 1e-3, 3e-3)
_SGD = (0.03, 0.1, 0.3)
_SIGN = (3e-5, 1e-4, 3e-4)  # sign updates move every weight by the full rate (Lion: 1e-4)
_FREE = (0.3, 1.0, 3.0)  # a multiplier of the step the method finds itself (default 1)

SPECS: dict[str, Spec] = {
    # --- the classics ---
    "sgd": Spec(SGD, _SGD),
    "noisy_sgd": Spec(SGD, _SGD, {"key": SEED}),
    "optimistic_gradient_descent": Spec(SGD, _SGD),
    "asgd": Spec(SGD, (0.01, 0.03, 0.1)),  # PyTorch's 0.01 up to SGD's 0.1
    # the step is (f - f*) / ||g||^2 capped by max_learning_rate (f* = 0, the cross-entropy's
    # infimum): the grid is of the cap; the paper's SPS_max uses caps of this order
    "polyak_sgd": Spec(SGD, (0.1, 0.3, 1.0), key="max_learning_rate", extras=("value",)),
    "adam": Spec(ADAM, _ADAM),
    "adamw": Spec(ADAM, _ADAM),
    "nadam": Spec(ADAM, _ADAM),
    "nadamw": Spec(ADAM, _ADAM),
    "radam": Spec(ADAM, _ADAM),
    "amsgrad": Spec(ADAM, _ADAM),
    "adabelief": Spec(ADAM, _ADAM),
    "adan": Spec(ADAM, _ADAM),
    "optimistic_adam": Spec(ADAM, _ADAM),
    "optimistic_adam_v2": Spec(ADAM, _ADAM),
    "adamax": Spec(ADAM, (1e-3, 3e-3, 1e-2)),  # the paper's 2e-3
    "adamaxw": Spec(ADAM, (1e-3, 3e-3, 1e-2)),
    "yogi": Spec(ADAM, (3e-3, 1e-2, 3e-2)),  # the paper's 1e-2
    "rmsprop": Spec(ADAPTIVE, _ADAM),  # the demo's 1e-3 (Keras's default; PyTorch's is 0.01)
    "adagrad": Spec(ADAPTIVE, (3e-3, 1e-2, 3e-2)),  # PyTorch's 0.01
    "adadelta": Spec(ADAPTIVE, (0.3, 1.0, 3.0)),  # the paper's (and PyTorch's) 1.0
    "rprop": Spec(ADAPTIVE, (3e-3, 1e-2, 3e-2)),  # PyTorch's initial step size 0.01
    "sm3": Spec(ADAPTIVE, (1e-2, 3e-2, 0.1)),
    "adafactor": Spec(ADAPTIVE, (3e-3, 1e-2, 3e-2)),  # relative to the parameter scale
    "lamb": Spec(LAYERWISE, (1e-3, 3e-3, 1e-2)),  # the demo's 3e-3
    "lars": Spec(LAYERWISE, (0.3, 1.0, 3.0)),  # the trust coefficient (1e-3) scales the step
    "fromage": Spec(LAYERWISE, (3e-3, 1e-2, 3e-2)),  # the paper's 0.01
    "novograd": Spec(LAYERWISE, (3e-3, 1e-2, 3e-2)),
    "lion": Spec(SIGN, _SIGN),
    "sign_sgd": Spec(SIGN, _SIGN),
    "signum": Spec(SIGN, _SIGN),
    # --- zoo II: matrices, curvature, sharpness ---
    # the hidden matrices' rate (Muon's 0.02); the other params' AdamW fixed at 3e-3
    "muon": Spec(MATRIX, (0.01, 0.02, 0.05), {"adam_learning_rate": 3e-3}),
    # Adam on rank-32 projections of the weight matrices, refreshed every 200 steps
    "galore": Spec(MATRIX, _ADAM, {"rank": 32}),
    # Adam-like steps in a preconditioned basis: Adam's grid (SOAP's paper: 3e-3; PSGD Kron's
    # default 1e-3); Shampoo grafted onto SGD's step norm (its default graft): SGD's grid
    # the eigenbases refreshed every 100 steps: SOAP's default, 10, costs minutes per task on
    # the 2-core CPU here (the eigh and QR of every copy's every factor)
    "soap": Spec(MATRIX, _ADAM, budget={"precondition_frequency": 100}),
    # the preconditioner updated at one step in 10 (its default schedule updates it at every
    # step of the first 500, that is of every run here: several times the whole budget)
    "kron": Spec(MATRIX, _ADAM, budget={"preconditioner_update_probability": 0.1}),
    # the inverse 4th roots every 100 steps: a computation of them costs a second or two of the
    # 2-core CPU here, so every step (Shampoo's default) or every 10 takes minutes per task
    "shampoo": Spec(MATRIX, _SGD, budget={"preconditioning_compute_steps": 100}),
    # each coordinate's step is clipped to the learning rate, as a sign method's is (the
    # paper's rates are of that order)
    "sophia": Spec(CURVATURE, (3e-4, 1e-3, 3e-3), extras=("obj_fn",)),
    # SAM (rho 0.05, the paper's) around AdamW at Adam's grid: every other call is the
    # ascent step, so its gradients make half as many real steps
    "sam": Spec(CURVATURE, _ADAM, build=_sam, key="opt_state/learning_rate"),
    # the direction's scale; the strong-Wolfe line search (on the mini-batch) picks the step
    "lbfgs": Spec(CURVATURE, (0.1, 0.3, 1.0), extras=("value", "grad", "value_fn")),
    # a few CG steps on the mini-batch's Hessian, damped (an undamped Newton step on a
    # non-convex mini-batch loss goes anywhere)
    "newton_cg": Spec(
        CURVATURE, (0.1, 0.3, 1.0), {"damping": 1.0, "max_cg_steps": 5}, extras=("value_fn",)
    ),
    # --- zoo III: schedule-free and learning-rate-free ---
    "schedule_free_sgd": Spec(
        FREE, (0.3, 1.0, 3.0), eval_params="schedule_free_eval_params"
    ),  # optax's and schedulefree's default 1.0
    "schedule_free_adamw": Spec(
        FREE, (1e-3, 2.5e-3, 5e-3), eval_params="schedule_free_eval_params"
    ),  # the default 2.5e-3
    "prodigy": Spec(FREE, _FREE),
    "dadapt_adamw": Spec(FREE, _FREE),
    "dog": Spec(FREE, _FREE),
    "dowg": Spec(FREE, _FREE),
    "cocob": Spec(FREE, _FREE),
    "momo": Spec(FREE, _FREE, extras=("value",)),  # a cap on Polyak's step, as polyak_sgd's
    "momo_adam": Spec(FREE, (3e-3, 1e-2, 3e-2), extras=("value",)),  # the default 1e-2
    # Mechanic learns the scale of Adam's steps: the grid is Adam's base rate
    "mechanize": Spec(FREE, _ADAM, build=_wrapping("mechanize", "adam"), needs=("mechanize",)),
    # --- zoo III: the Adam descendants ---
    "adopt": Spec(DESCENDANTS, _ADAM),
    "ademamix": Spec(DESCENDANTS, _ADAM),
    "simplified_ademamix": Spec(DESCENDANTS, _ADAM),
    "madgrad": Spec(DESCENDANTS, (3e-3, 1e-2, 3e-2)),  # the paper's (and optax's) 1e-2
    "acprop": Spec(DESCENDANTS, _ADAM),
    "mars": Spec(DESCENDANTS, (1e-3, 3e-3, 1e-2)),  # the paper's 3e-3
    "came": Spec(DESCENDANTS, _ADAM),
    "adam_mini": Spec(DESCENDANTS, _ADAM),
    "stable_adamw": Spec(DESCENDANTS, _ADAM),
    "laprop": Spec(DESCENDANTS, _ADAM),
    "cautious_adamw": Spec(
        DESCENDANTS, _ADAM, build=_wrapping("cautious", "adamw"), needs=("cautious", "adamw")
    ),
    "cautious_lion": Spec(
        DESCENDANTS, _SIGN, build=_wrapping("cautious", "lion"), needs=("cautious", "lion")
    ),
    # clipped per-example gradients plus Gaussian noise (Abadi et al.'s C = 1, sigma = 1.1)
    "dpsgd": Spec(
        SGD,
        _SGD,
        {"l2_norm_clip": 1.0, "noise_multiplier": 1.1, "seed": SEED},
        per_example=True,
    ),
}

NOT_YET = "not in gradtx yet"
# in the table but not run, with the reason (printed by every run)
EXCLUDED: dict[str, str] = {}


def needs(name: str) -> tuple[str, ...]:
    """The gradtx names the optimizer ``name`` is made of."""
    return SPECS[name].needs or (name,)


def missing(name: str) -> list[str]:
    """The pieces of ``name`` that gradtx does not have (yet)."""
    wanted = list(needs(name))
    if SPECS[name].eval_params:
        wanted.append(SPECS[name].eval_params)
    return [n for n in wanted if getattr(gradtx, n, None) is None]


def zoo_optimizers() -> list[str]:
    """gradtx's public optimizers: functions of a learning rate returning a transformation
    (not the ``scale_by_*`` building blocks)."""
    names = []
    for name in gradtx.__all__:
        fn = getattr(gradtx, name)
        if name.startswith("scale_by") or not callable(fn) or isinstance(fn, type):
            continue
        try:
            first = next(iter(inspect.signature(fn).parameters), None)
        except (TypeError, ValueError):
            continue
        if first in ("learning_rate", "max_learning_rate"):
            names.append(name)
    return sorted(names)


def uncovered() -> list[str]:
    """gradtx optimizers that the table does not list: each should get a ``Spec``."""
    return [n for n in zoo_optimizers() if n not in SPECS]


# --- where a run ran ---


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    devices = ", ".join(str(d) for d in jax.devices())
    return f"{platform.system()} {platform.machine()}, {model}, {os.cpu_count()} cores; {devices}"


def versions() -> str:
    import flax
    import optax

    return (
        f"jax {jax.__version__}, optax {optax.__version__}, flax {flax.__version__}, "
        f"Python {platform.python_version()}"
    )


def source() -> str:
    """The gradtx commit measured, and whether gradtx/ had uncommitted changes."""
    try:
        git = ["git", "-C", str(ROOT)]
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "gradtx"], capture_output=True)
    except OSError:
        return "unknown (no git)"
    if head.returncode:
        return "unknown (not a git checkout)"
    changed = " with uncommitted changes in gradtx/" if dirty.stdout.strip() else ""
    return f"commit {head.stdout.decode().strip()}{changed}"
