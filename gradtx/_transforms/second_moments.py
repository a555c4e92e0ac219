"""Second-moment scaling: RMSProp, centred RMSProp, AdaGrad, Adadelta, and Adam's preconditioner."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._core import tree as _tree
from gradtx._core.base import EmptyState, GradientTransformation, identity, stateless
from gradtx._core.checks import check_constant, check_dtype, check_flag
from gradtx._core.combine import chain, join
from gradtx._core.hyper import ScalarOrSchedule, Value, live, per_dtype, value_as
from gradtx._core.norms import sqrt
from gradtx._core.tree import abs_sq
from gradtx._transforms import quantized as _quantized
from gradtx._transforms.moment_storage import _eight_bit, _in_gradient_dtypes, _narrow, _widened
from gradtx._transforms.momentum import EmaState, _ema, ema_step

# ---- the math, for one array -------------------------------------------------------------


def _computed_dtype(*dtypes: Any) -> Any:
    """Preconditioners are computed in at least float32: in float16, eps = 1e-8 is 0 and a
    second moment under 6e-8 is 0, so ``m / (sqrt(v) + eps)`` would be 0/0 or inf."""
    return _tree.accumulation_dtype(_tree.wider(*dtypes))


def root_scale_step(eps: Value, eps_in_sqrt: bool, eps_root: Value | None = None):
    """``(g, v) -> g / sqrt(v + eps)`` or ``g / (sqrt(v) + eps)`` (Adam's
    ``g / (sqrt(v + eps_root) + eps)`` with ``eps_root``), computed in at least float32 and
    returned in the wider of their dtypes; the epsilons cast once per dtype (make one per update).
    """
    eps_as = per_dtype(lambda dtype: value_as(eps, dtype))
    eps_root_as = per_dtype(lambda dtype: value_as(eps_root, dtype))

    def step(g: jax.Array, v: jax.Array) -> jax.Array:
        out, dtype = _tree.wider(g.dtype, v.dtype), _computed_dtype(g.dtype, v.dtype)
        real = _tree.real_dtype(dtype)
        g, v = _tree.cast(g, dtype), _tree.cast(v, real)
        e = eps_as(real)
        if eps_in_sqrt:
            return _tree.cast(_tree.times(g, jax.lax.rsqrt(v + e)), out)
        if eps_root is not None:
            v = v + eps_root_as(real)
        return _tree.cast(_tree.divide(g, sqrt(v) + e), out)

    return step


def _of_magnitudes(tx: GradientTransformation) -> GradientTransformation:
    """``tx`` whose state is built for the real parts of complex params: a second moment of
    ``|g|**2`` is real (half the memory of a complex one, and no complex arithmetic)."""
    return GradientTransformation(lambda params: tx.init(_tree.real_like(params)), tx.update)


def _second_moment(decay: Value, *, debias: bool, initial_value: float = 0.0, store=None):
    """The exponential moving average of the squared updates (its average kept by ``store``)."""
    square = stateless(lambda updates, params: jax.tree.map(abs_sq, updates))
    average = _of_magnitudes(_ema(decay, debias=debias, initial_value=initial_value))
    return chain(square, average if store is None else store(average))


# ---- optax's state layouts ---------------------------------------------------------------


def _relayout(tx: GradientTransformation, kind: type, pack, unpack) -> GradientTransformation:
    """``tx`` (a chain or join of the pieces) with its state kept as ``pack(state)``, a ``kind``:
    optax's layout, whose fields are the pieces' buffers. ``unpack`` rebuilds the pieces' state
    from it (a count the layout does not keep, unused, is a constant there, not a buffer)."""

    def init(params):
        return pack(tx.init(params))

    def update(updates, state, params=None, **extra):
        if not isinstance(state, kind):
            raise ValueError(
                f"the state must be the {kind.__name__} that init made, got a "
                f"{type(state).__name__} (a checkpoint of an earlier gradtx layout converts "
                f"with gradtx.restore_state)"
            )
        out, new = tx.update(updates, unpack(state), params, **extra)
        return out, pack(new)

    return GradientTransformation(init, update)


# ---- RMSProp -----------------------------------------------------------------------------


class ScaleByRmsState(NamedTuple):
    """The state of :func:`scale_by_rms` (without ``bias_correction``), as optax's."""

    nu: Any  # like the params' real parts: the average of |g|**2


class ScaleByRmsWithCountState(NamedTuple):
    """The state of :func:`scale_by_rms` with ``bias_correction``, as optax's."""

    count: jax.Array  # int32 []: updates so far (the bias correction's step), saturating
    nu: Any  # like the params' real parts: the average of |g|**2


def _moment_of(count: jax.Array | None, average: Any) -> EmaState:
    return EmaState(_tree.zero_count() if count is None else count, average)


def _scale_by_rms(decay, eps, *, initial_scale, eps_in_sqrt, bias_correction):
    scale = root_scale_step(eps, eps_in_sqrt)
    moment = _second_moment(decay, debias=bias_correction, initial_value=initial_scale)
    moments = join(scale, identity(), moment)
    if bias_correction:
        return _relayout(
            moments,
            ScaleByRmsWithCountState,
            lambda s: ScaleByRmsWithCountState(s[1][1].count, s[1][1].ema),
            lambda s: (EmptyState(), (EmptyState(), _moment_of(s.count, s.nu))),
        )
    return _relayout(
        moments,
        ScaleByRmsState,
        lambda s: ScaleByRmsState(s[1][1].ema),
        lambda s: (EmptyState(), (EmptyState(), _moment_of(None, s.nu))),
    )


def scale_by_rms(
    decay: ScalarOrSchedule = 0.9,
    eps: ScalarOrSchedule = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> GradientTransformation:
    r"""Divides updates by the root of an exponential average of their squares (RMSProp).

    .. math::
      s_t = \gamma s_{t-1} + (1 - \gamma) g_t^2, \quad s_0 = \text{initial\_scale}, \qquad
      u_t = g_t / \sqrt{\hat s_t + \epsilon} \;\text{or}\; g_t / (\sqrt{\hat s_t} + \epsilon)

    with :math:`\hat s_t = s_t / (1 - \gamma^t)` if ``bias_correction`` else :math:`s_t`.

    Complex updates: :math:`|g_t|^2` (real) in place of :math:`g_t^2`.

    Args:
      decay: γ in [0, 1), a float or a schedule. Default 0.9 (optax's and Hinton's lecture).
      eps: ε >= 0. Default 1e-8 (optax's and PyTorch's).
      initial_scale: :math:`s_0 >= 0`, fixed when the state is built. Default 0 (optax's and
        PyTorch's; TensorFlow uses 1).
      eps_in_sqrt: ε inside the root (optax's default) or outside (PyTorch, ``False``).
      bias_correction: debias :math:`s` as Adam does. Default ``False`` (optax's).

    Returns:
      A :class:`GradientTransformation` whose state holds the live hyperparameters and
      optax's :class:`gradtx.ScaleByRmsState`, :math:`s` (like the params' real parts) as
      ``nu`` (with ``bias_correction``, ``ScaleByRmsWithCountState``: the step count, then
      ``nu``).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_rms()
      >>> g = jnp.array([1.0, -2.0])
      >>> updates, state = tx.update(g, tx.init(g))
      >>> [round(u, 4) for u in updates.tolist()]  # g / sqrt(0.1 g**2) = sign(g) sqrt(10)
      [3.1623, -3.1623]

    References:
      Tieleman and Hinton, *Lecture 6.5 - RMSProp*, COURSERA: Neural Networks for Machine
      Learning, 2012.
    """
    owner = "scale_by_rms"
    build = functools.partial(
        _scale_by_rms,
        initial_scale=check_constant(owner, "initial_scale", initial_scale),
        eps_in_sqrt=check_flag(owner, "eps_in_sqrt", eps_in_sqrt),
        bias_correction=check_flag(owner, "bias_correction", bias_correction),
    )
    return live(owner, build, decay=decay, eps=eps)


def centred_scale_step(eps: Value, eps_in_sqrt: bool):
    """``(g, m, v) ->`` ``g`` over the root of the variance estimate ``v - |m|**2``."""
    scale = root_scale_step(eps, eps_in_sqrt)
    return lambda g, m, v: scale(g, v - _tree.cast(abs_sq(m), v.dtype))


class ScaleByRStdDevState(NamedTuple):
    """The state of :func:`scale_by_stddev` (without ``bias_correction``), as optax's."""

    mu: Any  # like the params: the average of g
    nu: Any  # like the params' real parts: the average of |g|**2


class ScaleByRStdDevWithCountState(NamedTuple):
    """The state of :func:`scale_by_stddev` with ``bias_correction``, as optax's."""

    count: jax.Array  # int32 []: updates so far (both averages' bias correction), saturating
    mu: Any  # like the params: the average of g
    nu: Any  # like the params' real parts: the average of |g|**2


def _scale_by_stddev(decay, eps, *, initial_scale, eps_in_sqrt, bias_correction):
    scale = centred_scale_step(eps, eps_in_sqrt)
    mean = _ema(decay, debias=bias_correction)
    moment = _second_moment(decay, debias=bias_correction, initial_value=initial_scale)
    moments = join(scale, identity(), mean, moment)

    def unpack(s):
        count = s.count if bias_correction else None
        return (EmptyState(), _moment_of(count, s.mu), (EmptyState(), _moment_of(count, s.nu)))

    if bias_correction:
        return _relayout(
            moments,
            ScaleByRStdDevWithCountState,
            lambda s: ScaleByRStdDevWithCountState(s[1].count, s[1].ema, s[2][1].ema),
            unpack,
        )
    return _relayout(
        moments, ScaleByRStdDevState, lambda s: ScaleByRStdDevState(s[1].ema, s[2][1].ema), unpack
    )


def scale_by_stddev(
    decay: ScalarOrSchedule = 0.9,
    eps: ScalarOrSchedule = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> GradientTransformation:
    r"""Centred RMSProp: divides updates by the root of a running variance estimate.

    .. math::
      m_t = \gamma m_{t-1} + (1 - \gamma) g_t, \quad
      s_t = \gamma s_{t-1} + (1 - \gamma) g_t^2, \qquad
      u_t = g_t / \sqrt{\hat s_t - \hat m_t^2 + \epsilon}

    (or with ε outside the root), with :math:`\hat m, \hat s` debiased when
    ``bias_correction``. Complex updates: :math:`|g_t|^2` and :math:`|m_t|^2`.

    Args:
      decay: γ in [0, 1), the decay of both averages, a float or a schedule. Default 0.9
        (optax's).
      eps: ε >= 0. Default 1e-8 (optax's and PyTorch's).
      initial_scale: :math:`s_0 >= 0`, fixed when the state is built. Default 0 (optax's and
        PyTorch's).
      eps_in_sqrt: ε inside the root (optax's default) or outside (PyTorch, ``False``).
      bias_correction: debias :math:`m` and :math:`s` as Adam does. Default ``False``.

    Returns:
      A :class:`GradientTransformation` whose state holds the live hyperparameters and
      optax's :class:`gradtx.ScaleByRStdDevState`: :math:`m` (like the params) as ``mu`` and
      :math:`s` (like their real parts) as ``nu`` (with ``bias_correction``,
      ``ScaleByRStdDevWithCountState``: the step count first).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_stddev()
      >>> g = jnp.array([1.0, -2.0])
      >>> updates, state = tx.update(g, tx.init(g))
      >>> [round(u, 4) for u in updates.tolist()]  # g / sqrt(0.1 g**2 - 0.01 g**2)
      [3.3333, -3.3333]

    References:
      Graves, *Generating Sequences With Recurrent Neural Networks*, 2013, eq. 38-45.
    """
    owner = "scale_by_stddev"
    build = functools.partial(
        _scale_by_stddev,
        initial_scale=check_constant(owner, "initial_scale", initial_scale),
        eps_in_sqrt=check_flag(owner, "eps_in_sqrt", eps_in_sqrt),
        bias_correction=check_flag(owner, "bias_correction", bias_correction),
    )
    return live(owner, build, decay=decay, eps=eps)


# ---- AdaGrad -----------------------------------------------------------------------------


class ScaleByRssState(NamedTuple):
    sum_of_squares: Any  # like the params: the running sum of squared updates


def rss_scale_step(eps: Value, eps_in_sqrt: bool):
    """``(g, s) -> g / sqrt(s + eps)`` (or ``g / (sqrt(s) + eps)``), 0 where ``s`` is 0 (hence
    g is 0, and with eps = 0 the quotient would be 0/0). A NaN in ``s`` stays NaN, as
    everywhere in the library (not 0, which would stop that parameter silently for good)."""
    scale = root_scale_step(eps, eps_in_sqrt)
    return lambda g, s: jnp.where(s == 0, jnp.zeros_like(g), scale(g, s))


def _scale_by_rss(eps, *, initial_accumulator_value, eps_in_sqrt):
    def init(params):
        return ScaleByRssState(_tree.full_like(_tree.real_like(params), initial_accumulator_value))

    def update(updates, state, params=None, **extra):
        add = lambda g, s: s + abs_sq(g).astype(s.dtype)  # noqa: E731
        sums = _tree.map(add, updates, state.sum_of_squares, owner="scale_by_rss")
        return jax.tree.map(rss_scale_step(eps, eps_in_sqrt), updates, sums), ScaleByRssState(sums)

    return GradientTransformation(init, update)


def scale_by_rss(
    initial_accumulator_value: float = 0.1,
    eps: ScalarOrSchedule = 1e-7,
    eps_in_sqrt: bool = True,
) -> GradientTransformation:
    r"""AdaGrad's scaling: divides updates by the root of the sum of all past squared updates.

    .. math::
      s_t = s_{t-1} + g_t^2, \qquad u_t = g_t / \sqrt{s_t + \epsilon}
      \;\text{or}\; g_t / (\sqrt{s_t} + \epsilon)

    An element whose :math:`s_t` is 0 (a zero gradient so far, no initial value) gets 0.
    Complex updates: :math:`|g_t|^2` (real) in place of :math:`g_t^2`.

    Args:
      initial_accumulator_value: :math:`s_0 >= 0`, fixed when the state is built. Default 0.1
        (optax's; PyTorch's is 0).
      eps: ε >= 0, a float or a schedule. Default 1e-7 (optax's, inside the root; PyTorch's is
        1e-10, outside).
      eps_in_sqrt: ε inside the root (optax) or outside (PyTorch, ``False``).

    Returns:
      A :class:`GradientTransformation` whose state holds ``eps`` and :math:`s` (like the
      params' real parts).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_rss()
      >>> g = jnp.array([1.0, -2.0])
      >>> updates, state = tx.update(g, tx.init(g))
      >>> [round(u, 4) for u in updates.tolist()]  # g / sqrt(0.1 + g**2)
      [0.9535, -0.9877]

    References:
      Duchi, Hazan and Singer, *Adaptive Subgradient Methods for Online Learning and
      Stochastic Optimization*, JMLR 2011.
    """
    owner = "scale_by_rss"
    build = functools.partial(
        _scale_by_rss,
        initial_accumulator_value=check_constant(
            owner, "initial_accumulator_value", initial_accumulator_value
        ),
        eps_in_sqrt=check_flag(owner, "eps_in_sqrt", eps_in_sqrt),
    )
    return live(owner, build, eps=eps)


# ---- Adadelta ----------------------------------------------------------------------------


class ScaleByAdaDeltaState(NamedTuple):
    """The state of :func:`scale_by_adadelta`, as optax's."""

    e_g: Any  # like the params: running average of squared gradients, E[g²]
    e_x: Any  # like the params: running average of squared updates, E[Δx²]


def adadelta_step(eps: Value):
    """``(g, e_g, e_x) ->`` Δx = sqrt(E[Δx²] + eps) / sqrt(E[g²] + eps) * g, with E[g²] already
    updated; ``eps`` cast once per dtype (make one per update)."""
    eps_as = per_dtype(lambda dtype: value_as(eps, dtype))

    def step(g: jax.Array, e_g: jax.Array, e_x: jax.Array) -> jax.Array:
        dtype, eps = e_g.dtype, eps_as(e_g.dtype)
        ratio = jnp.sqrt(_tree.cast(e_x, dtype) + eps) / jnp.sqrt(e_g + eps)
        return _tree.times(_tree.cast(g, _tree.wider(g.dtype, dtype)), ratio)

    return step


def _scale_by_adadelta(rho, eps):
    def init(params):
        magnitudes = _tree.real_like(params)
        return ScaleByAdaDeltaState(_tree.zeros_like(magnitudes), _tree.zeros_like(magnitudes))

    def update(updates, state, params=None, **extra):
        average = ema_step(rho)
        square_avg = lambda x, avg: average(abs_sq(x), avg)  # noqa: E731
        e_g = _tree.map(square_avg, updates, state.e_g, owner="scale_by_adadelta")
        delta = jax.tree.map(adadelta_step(eps), updates, e_g, state.e_x)
        e_x = jax.tree.map(square_avg, delta, state.e_x)
        new_state = ScaleByAdaDeltaState(
            _tree.cast_like(e_g, state.e_g), _tree.cast_like(e_x, state.e_x)
        )
        return delta, new_state

    return GradientTransformation(init, update)


def scale_by_adadelta(rho: ScalarOrSchedule = 0.9, eps: ScalarOrSchedule = 1e-6):
    r"""Adadelta's scaling: a unit-correct step from running averages of g² and Δx².

    .. math::
      E[g^2]_t = \rho E[g^2]_{t-1} + (1-\rho) g_t^2, \quad
      \Delta x_t = \frac{\sqrt{E[\Delta x^2]_{t-1} + \epsilon}}{\sqrt{E[g^2]_t + \epsilon}} g_t,
      \quad E[\Delta x^2]_t = \rho E[\Delta x^2]_{t-1} + (1-\rho) \Delta x_t^2

    Returns :math:`+\Delta x` (a descent direction once scaled by ``-learning_rate``).

    Args:
      rho: ρ in [0, 1), the decay of both averages, a float or a schedule. Default 0.9
        (optax's and PyTorch's; the paper uses 0.95).
      eps: ε >= 0. Default 1e-6 (optax's, PyTorch's and the paper's).

    Returns:
      A :class:`GradientTransformation` whose state holds the live hyperparameters and the two
      averages (like the params).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_adadelta()
      >>> g = jnp.array([1.0, -2.0])
      >>> updates, state = tx.update(g, tx.init(g))
      >>> [round(u, 5) for u in updates.tolist()]  # sqrt(eps) / sqrt(0.1 g**2) * g
      [0.00316, -0.00316]

    References:
      Zeiler, *ADADELTA: An Adaptive Learning Rate Method*, arXiv:1212.5701, 2012,
      Algorithm 1.
    """
    return live("scale_by_adadelta", _scale_by_adadelta, rho=rho, eps=eps)


# ---- Adam --------------------------------------------------------------------------------


def _scale_by_adam(
    b1,
    b2,
    eps,
    eps_root,
    *,
    mu_dtype=None,
    nesterov=False,
    nu_dtype=None,
    optim_bits=32,
    min_8bit_size=_quantized.MIN_8BIT_SIZE,
):
    scale = root_scale_step(eps, eps_in_sqrt=False, eps_root=eps_root)
    if optim_bits == 8:
        first = _eight_bit(signed=True, min_size=min_8bit_size)(_ema(b1, nesterov=nesterov))
        second = _second_moment(
            b2, debias=True, store=_eight_bit(signed=False, min_size=min_8bit_size)
        )
        return _one_count(_in_gradient_dtypes(join(scale, _widened(first), _widened(second))))
    first = _ema(b1, debias=True, nesterov=nesterov, accumulator_dtype=mu_dtype)
    second = _second_moment(b2, debias=True, store=None if nu_dtype is None else _narrow(nu_dtype))
    if mu_dtype is None and nu_dtype is None:
        return _one_count(join(scale, first, second))
    if mu_dtype is not None:
        first = _widened(first)
    if nu_dtype is not None:
        second = _widened(second)
    return _one_count(_in_gradient_dtypes(join(scale, first, second)))


class ScaleByAdamState(NamedTuple):
    """The state of :func:`scale_by_adam` (and of the optimizers built on it)."""

    count: jax.Array  # int32 []: updates taken (both moments' bias correction), saturating
    mu: Any  # like the params (mu_dtype if given; 8-bit blocks for optim_bits=8): the first moment
    nu: Any  # like the params' real parts (nu_dtype...): the second moment of |g|


def _one_count(moments: GradientTransformation) -> GradientTransformation:
    """Adam's ``join(scale, ema(b1), chain(square, ema(b2)))`` with one step count for both
    averages, as :class:`ScaleByAdamState`: the two counts always agree, and each is a buffer
    passed in and out of every step (on XLA:CPU about 1.5 us each, 6% of a small model's step)."""
    return _relayout(
        moments,
        ScaleByAdamState,
        lambda s: ScaleByAdamState(s[0].count, s[0].ema, s[1][1].ema),
        lambda s: (EmaState(s.count, s.mu), (EmptyState(), EmaState(s.count, s.nu))),
    )


def check_storage(owner: str, mu_dtype, nu_dtype, optim_bits, min_8bit_size) -> dict[str, Any]:
    """Validates the low-memory arguments of Adam's factories; returns them as ``_scale_by_adam``
    takes them."""
    mu_dtype = check_dtype(owner, "mu_dtype", mu_dtype)
    nu_dtype = check_dtype(owner, "nu_dtype", nu_dtype)
    if isinstance(optim_bits, bool) or not isinstance(optim_bits, (int, np.integer)):
        raise TypeError(f"{owner}: optim_bits must be the int 8 or 32, got {optim_bits!r}")
    if optim_bits not in (8, 32):
        raise ValueError(f"{owner}: optim_bits must be 8 or 32, got {optim_bits!r}")
    if isinstance(min_8bit_size, bool) or not isinstance(min_8bit_size, (int, np.integer)):
        raise TypeError(f"{owner}: min_8bit_size must be an int, got {min_8bit_size!r}")
    if min_8bit_size < 1:
        raise ValueError(f"{owner}: min_8bit_size must be >= 1, got {min_8bit_size}")
    if optim_bits == 8 and (mu_dtype is not None or nu_dtype is not None):
        raise ValueError(
            f"{owner}: mu_dtype and nu_dtype apply to optim_bits=32; with optim_bits=8 the "
            f"moments of leaves under min_8bit_size elements stay in float32"
        )
    return dict(
        mu_dtype=mu_dtype,
        nu_dtype=nu_dtype,
        optim_bits=int(optim_bits),
        min_8bit_size=int(min_8bit_size),
    )


def scale_by_adam(
    b1: ScalarOrSchedule = 0.9,
    b2: ScalarOrSchedule = 0.999,
    eps: ScalarOrSchedule = 1e-8,
    eps_root: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
    optim_bits: int = 32,
    min_8bit_size: int = _quantized.MIN_8BIT_SIZE,
) -> GradientTransformation:
    r"""Adam's preconditioner: debiased first moment over the root of the debiased second.

    Built from the pieces, not written out: ``join(m / (sqrt(v + eps_root) + eps),
    ema(b1, debias=True), ema(b2, debias=True) of g²)``.

    .. math::
      m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,
      \quad u_t = \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t) + \epsilon_{root}}
      + \epsilon}

    With ``nesterov=True`` the first moment is Dozat's look-ahead (NAdam):
    :math:`\beta_1 m_t / (1-\beta_1^{t+1}) + (1-\beta_1) g_t / (1-\beta_1^t)`.

    Low-memory state (Adam keeps 8 bytes per float32 parameter): ``mu_dtype`` and ``nu_dtype``
    store the moments in a narrower float (``jnp.bfloat16``: 4 bytes per parameter for both);
    ``optim_bits=8`` stores them block-wise quantized in 8 bits (about 2 bytes per parameter,
    Dettmers et al., 2022). Either way the update is computed in at least float32 from the
    stored moments, and only the stored copy is narrow. A first moment narrower than float32 is
    rounded to nearest (as optax does); a second moment narrower than float32 is rounded
    stochastically, because with ``b2`` near 1 round-to-nearest loses every increment below
    half an ulp and the average stalls (see :mod:`gradtx._transforms.quantized`).

    Args:
      b1: β₁ in [0, 1). Default 0.9, as in the paper.
      b2: β₂ in [0, 1). Default 0.999, as in the paper.
      eps: ε outside the root. Default 1e-8, as in the paper.
      eps_root: ε inside the root (keeps gradients through the update finite).
      mu_dtype: dtype of the first moment (default: the params' dtype).
      nesterov: use NAdam's first moment.
      nu_dtype: dtype of the second moment (default: the params' dtype).
      optim_bits: 32 (moments as floats) or 8 (block-wise 8-bit moments), as in bitsandbytes.
      min_8bit_size: with ``optim_bits=8``, leaves with fewer elements keep float32 moments
        (default 4096, the paper's rule: small tensors cost little and are often sensitive).

    Returns:
      A :class:`GradientTransformation` whose state (inside the live hyperparameters'
      :class:`gradtx.HyperState`) is a :class:`gradtx.ScaleByAdamState`: ``count`` (one step
      count for both moments' bias correction), ``mu`` and ``nu``, as optax's. It has the same
      structure for every storage choice except ``optim_bits=8``, where the moments of big
      leaves are :class:`gradtx.QuantizedArray` (uint8 codes and float32 block scales).

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> tx = gradtx.scale_by_adam(optim_bits=8)
      >>> params = {"w": jnp.ones((64, 64)), "b": jnp.ones(64)}
      >>> updates, state = tx.update(params, tx.init(params))
      >>> round(float(updates["w"][0, 0]), 6)  # the first step of Adam is g / |g|
      1.0
      >>> round(sum(x.nbytes for x in jax.tree.leaves(state)) / 4160, 2)  # bytes per param
      2.14

    References:
      Kingma and Ba, *Adam: A Method for Stochastic Optimization*, 2014;
      Dozat, *Incorporating Nesterov Momentum into Adam*, 2016;
      Dettmers, Lewis, Shleifer and Zettlemoyer, *8-bit Optimizers via Block-wise
      Quantization*, ICLR 2022.
    """
    owner = "scale_by_adam"
    build = functools.partial(
        _scale_by_adam,
        nesterov=check_flag(owner, "nesterov", nesterov),
        **check_storage(owner, mu_dtype, nu_dtype, optim_bits, min_8bit_size),
    )
    return live(owner, build, b1=b1, b2=b2, eps=eps, eps_root=eps_root)
