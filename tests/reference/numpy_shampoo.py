"""Float64 NumPy reference of Shampoo (gradtx/_transforms/kronecker.py and _optimizers/shampoo.py).

Written from the papers and the documented choices of ``distributed_shampoo`` (optax-shampoo),
block by block in plain loops, in the conventions of ``numpy_reference`` (``Ref(init, update)``
on lists of leaves, hyperparameters numbers or callables of the count). Complex leaves use the
conjugate transpose.

Gupta, Koren and Singer, *Shampoo*, ICML 2018, Algorithm 2 (an order-k tensor: one statistic
per axis, ``H_i += G_(i) G_(i)^T``, the direction ``G x_1 H_1^{-1/2k} ... x_k H_k^{-1/2k}``),
with the scalable version's choices (Anil et al., 2020, and the reference implementation):

- the leaf is reshaped by merging adjacent axes while their product is <= 4096 (all-ones
  shapes to (1,)), then cut into blocks: along each axis, blocks of ``block_size`` from the
  start and a shorter last one;
- per block and axis: ``H = beta2 H + (1 - beta2) G_(i) G_(i)^H`` (``beta2 = 1``: a sum), from
  ``H = matrix_epsilon I``, every ``statistics_compute_steps`` steps (at t = 0, k, ...; t the
  count before the step);
- every ``preconditioning_compute_steps`` steps ``P = (H + r I)^{-1/p}``, ``r = eps *
  max(lambda_max, 1e-16)`` (or ``eps`` absolute), by eigendecomposition with eigenvalues
  clipped at 0; ``p = 2k`` or ``exponent_override``; a root that is not finite is not used;
- per leaf, the graft ``A`` (sgd: g; sqrt_n: sign g; adagrad: g / (sqrt(sum g^2) + eps_d);
  rmsprop: g / (sqrt(EMA g^2) + eps_d), clipped by its RMS; adam: the EMA debiased; the
  ``_normalized`` ones of g / (|g| + 1e-16)) and ``S = |A| / (|D| + 1e-16) D`` (``none``:
  ``S = D``); leaves too large, of too low a rank or empty: ``S = A``;
- ``m = beta1 m + w (S + wd p)``, ``a = beta1 a + w (A + wd p)`` (``w = 1`` or ``1 - beta1``);
  the step is m (a before ``start_preconditioning_step``), or with Nesterov
  ``w (S + wd p) + beta1 m``; the optimizer adds ``-lr`` times it (and ``-lr wd_decoupled p``).
"""

from __future__ import annotations

import math

import numpy as np

from tests.reference.numpy_reference import Ref, _abs_sq, _norm, _value

TINY = 1e-16
GRAFT_CODES = {
    1: "sgd",
    2: "adagrad",
    3: "rmsprop",
    4: "rmsprop_normalized",
    5: "sqrt_n",
    6: "adagrad_normalized",
}


def merge_small_dims(shape, max_dim):
    if shape and all(d == 1 for d in shape):
        return [1]
    out, product = [], 1
    for d in shape:
        if product * d <= max_dim:
            product *= d
        else:
            if product > 1:
                out.append(product)
            product = d
    if product > 1:
        out.append(product)
    return out


def _cuts(d, block_size):
    """The split indices of an axis: every ``block_size`` elements."""
    if not 0 < block_size < d:
        return []
    return list(range(block_size, d, block_size))


def _blocks(x, cuts):
    """The blocks of ``x`` in row-major order of the block grid."""
    blocks = [x]
    for axis, c in enumerate(cuts):
        if c:
            blocks = [piece for b in blocks for piece in np.split(b, c, axis=axis)]
    return blocks


def _merge(blocks, cuts, shape):
    """The inverse of :func:`_blocks`."""
    for axis in reversed(range(len(cuts))):
        if not cuts[axis]:
            continue
        n = len(cuts[axis]) + 1
        blocks = [np.concatenate(blocks[i : i + n], axis=axis) for i in range(0, len(blocks), n)]
    assert len(blocks) == 1 and blocks[0].shape == tuple(shape)
    return blocks[0]


def _gram(g, axis):
    y = np.moveaxis(g, axis, 0).reshape(g.shape[axis], -1)
    return y @ y.conj().T


def _mode(g, p, axis):
    y = np.moveaxis(g, axis, 0)
    shape = y.shape
    y = (p @ y.reshape(shape[0], -1)).reshape(shape)
    return np.moveaxis(y, 0, axis)


def inverse_root(h, p, eps, relative=True):
    """(h + r I)^(-1/p), eigenvalues clipped at 0, r = eps max(lambda_max, 1e-16) (relative)."""
    w, v = np.linalg.eigh(h)
    w = np.maximum(w, 0.0)
    r = eps * max(w[-1], 1e-16) if relative else eps
    with np.errstate(divide="ignore", invalid="ignore"):
        return (v * (w + r) ** (-1.0 / p)) @ v.conj().T


def scale_by_shampoo(
    block_size=128,
    beta1=0.9,
    beta2=0.999,
    diagonal_epsilon=1e-10,
    matrix_epsilon=1e-6,
    weight_decay=None,
    start_preconditioning_step=5,
    preconditioning_compute_steps=1,
    statistics_compute_steps=1,
    best_effort_shape_interpretation=True,
    graft_type="sgd",
    nesterov=True,
    exponent_override=0,
    moving_average_for_momentum=False,
    inverse_failure_threshold=0.1,
    skip_preconditioning_dim_size_gt=4096,
    clip_by_scaled_gradient_norm=None,
    precision=None,
    tensordot_precision=None,
    relative_matrix_epsilon=True,
    merge_small_dims_block_size=4096,
    skip_preconditioning_rank_lt=1,
    root_method="eigh",
) -> Ref:
    del inverse_failure_threshold, precision, tensordot_precision  # eigh: a finite root is used
    assert root_method == "eigh"
    graft_type = GRAFT_CODES.get(graft_type, graft_type)

    def plan(p):
        """(merged shape, per-axis cuts) or None (the graft's step)."""
        if (
            p.size == 0
            or p.ndim < skip_preconditioning_rank_lt
            or any(d > skip_preconditioning_dim_size_gt for d in p.shape)
        ):
            return None
        shape = (
            merge_small_dims(list(p.shape), merge_small_dims_block_size)
            if best_effort_shape_interpretation
            else list(p.shape)
        )
        return shape, [_cuts(d, block_size) for d in shape]

    def init(params):
        stats, roots = [], []
        for p in params:
            layout = plan(p)
            blocks = [] if layout is None else _blocks(np.zeros(layout[0]), layout[1])
            eps0 = _value(matrix_epsilon, 0)
            dtype = np.complex128 if np.iscomplexobj(p) else np.float64
            stats.append([[eps0 * np.eye(d, dtype=dtype) for d in b.shape] for b in blocks])
            roots.append([[np.eye(d, dtype=dtype) for d in b.shape] for b in blocks])
        zeros = [np.zeros_like(p) for p in params]
        diag = [np.zeros(p.shape) for p in params]
        return (0, stats, roots, diag, zeros, list(zeros))

    def graft(g, v, count):
        b2 = _value(beta2, count)
        eps = _value(diagonal_epsilon, count)
        if graft_type in ("sgd", "none"):
            return g, v
        if graft_type == "sqrt_n":
            return np.sign(g) if not np.iscomplexobj(g) else g / np.where(g == 0, 1, np.abs(g)), v
        x = g
        if graft_type.endswith("_normalized"):
            x = g / (_norm(g) + TINY)
        if graft_type.startswith("adagrad"):
            v = v + _abs_sq(x)
            second = v
        else:
            w2 = 1.0 if b2 == 1.0 else 1.0 - b2
            v = b2 * v + w2 * _abs_sq(x)
            second = v
            if graft_type == "adam" and b2 != 1.0:
                second = v / (1.0 - b2 ** (count + 1))
        a = x / (np.sqrt(second) + eps)
        if clip_by_scaled_gradient_norm is not None and graft_type.startswith(("rmsprop", "adam")):
            c = _value(clip_by_scaled_gradient_norm, count)
            rms = _norm(a) / math.sqrt(max(a.size, 1))
            a = a / max(1.0, rms / c)
        return a, v

    def update(gs, state, ps):
        count, stats, roots, diags, mgs, mss = state
        ps = [None] * len(gs) if ps is None else ps
        b1, b2 = _value(beta1, count), _value(beta2, count)
        eps = _value(matrix_epsilon, count)
        wd = None if weight_decay is None else _value(weight_decay, count)
        w = 1.0 - b1 if moving_average_for_momentum else 1.0
        new_stats, new_roots, outs, new_diags, new_mgs, new_mss = [], [], [], [], [], []
        for g, s, r, v, mg, ms, p in zip(gs, stats, roots, diags, mgs, mss, ps):
            layout = plan(g)
            if layout is not None:
                shape, cuts = layout
                blocks = _blocks(g.reshape(shape), cuts)
                if count % statistics_compute_steps == 0:
                    w2 = 1.0 if b2 == 1.0 else 1.0 - b2
                    s = [
                        [b2 * h + w2 * _gram(blk, axis) for axis, h in enumerate(hs)]
                        for blk, hs in zip(blocks, s)
                    ]
                if count % preconditioning_compute_steps == 0:
                    k = exponent_override or 2 * len(shape)
                    new_r = []
                    for hs, olds in zip(s, r):
                        row = []
                        for h, old in zip(hs, olds):
                            root = inverse_root(h, k, eps, relative_matrix_epsilon)
                            row.append(root if np.all(np.isfinite(root)) else old)
                        new_r.append(row)
                    r = new_r
                pieces = []
                for blk, ps_ in zip(blocks, r):
                    for axis, pm in enumerate(ps_):
                        blk = _mode(blk, pm, axis)
                    pieces.append(blk)
                direction = _merge(pieces, cuts, shape).reshape(g.shape)
            a, v = graft(g, v, count)
            if layout is None:
                shampoo = a
            elif graft_type == "none":
                shampoo = direction
            else:
                shampoo = direction * (_norm(a) / (_norm(direction) + TINY))
            if wd is not None:
                shampoo, a = shampoo + wd * p, a + wd * p
            ms = b1 * ms + w * shampoo
            mg = b1 * mg + w * a
            run = count >= start_preconditioning_step
            step = ms if run else mg
            if nesterov:
                step = w * (shampoo if run else a) + b1 * step
            outs.append(step)
            new_stats.append(s)
            new_roots.append(r)
            new_diags.append(v)
            new_mgs.append(mg)
            new_mss.append(ms)
        return outs, (count + 1, new_stats, new_roots, new_diags, new_mgs, new_mss)

    return Ref(init, update)


def shampoo(learning_rate, *args, weight_decay=0.0, decoupled_weight_decay=False, **kwargs) -> Ref:
    """-lr times scale_by_shampoo's step (plus lr wd p when decoupled)."""
    inner = scale_by_shampoo(
        *args, weight_decay=None if decoupled_weight_decay else weight_decay, **kwargs
    )

    def init(params):
        return (0, inner.init(params))

    def update(gs, state, ps):
        count, inner_state = state
        u, inner_state = inner.update(gs, inner_state, ps)
        lr = _value(learning_rate, count)
        if decoupled_weight_decay:
            wd = _value(weight_decay, count)
            u = [x + wd * p for x, p in zip(u, ps)]
        return [-lr * x for x in u], (count + 1, inner_state)

    return Ref(init, update)


REFERENCES = {"shampoo": shampoo, "scale_by_shampoo": scale_by_shampoo}
