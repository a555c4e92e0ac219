"""Matrix-aware optimizers: Muon.

Each treats a weight matrix as a matrix, not as a bag of numbers: its pieces (the matrix view,
Newton–Schulz) are in :mod:`gradtx._linalg`, its transformations in
:mod:`gradtx._transforms.orthogonal`. Leaves that are not matrices go to AdamW inside the same
optimizer, through :func:`gradtx.partition`.
"""

from __future__ import annotations

import re
from typing import Any

import jax

from gradtx._core import tree as _tree
from gradtx._core.base import GradientTransformation
from gradtx._core.combine import chain, check_mask, partition
from gradtx._core.hyper import ScalarOrSchedule, live
from gradtx._linalg.newton_schulz import MUON_COEFFS
from gradtx._linalg.view import MatrixDimensionNumbers, leaf_dimension_numbers
from gradtx._transforms.decay import _add_decayed_weights
from gradtx._transforms.orthogonal import (
    MuonState,
    _scale_by_muon,
    _scale_by_shape,
    muon_arguments,
)
from gradtx._transforms.quantized import MIN_8BIT_SIZE
from gradtx._transforms.second_moments import _scale_by_adam, check_storage
from gradtx._transforms.step_size import _scale_by_learning_rate

# A path key of an embedding or an output head, matched (re.search) against each key of a
# leaf's path, lowercased: Flax's Embed (``embedding``), nanoGPT's ``wte``/``wpe``/``lm_head``,
# ``head``, ``unembed``, ``classifier``, ``logits``, ``readout``.
EMBEDDING_OR_HEAD = r"embed|^wte$|^wpe$|head$|^classifier$|^logits$|^readout$"


def muon_dimension_numbers(params: Any, exclude: str | None = EMBEDDING_OR_HEAD) -> Any:
    """Muon's default split of a model: which leaves it treats as matrices.

    Every rank-2 leaf is one matrix (rows: axis 0, the fan-in of ``x @ W``; columns: axis 1),
    except an embedding or an output head, recognised by a key of its path that ``exclude``
    matches; those and every leaf of another rank (biases, norm scales, scalars, stacked or
    convolution kernels, which need their axes named) go to AdamW. The paper leaves
    embeddings and heads to AdamW (Jordan et al., 2024).

    Args:
      params: the params (or any tree of their shapes).
      exclude: a regular expression searched for in each key of a leaf's path (lowercased),
        default :data:`EMBEDDING_OR_HEAD`; None treats every rank-2 leaf as a matrix
        (optax.contrib.muon's default).

    Returns:
      A tree like ``params`` with a :class:`gradtx.MatrixDimensionNumbers` for each matrix and
      None elsewhere: pass it, changed as needed, as ``muon(...,
      muon_weight_dimension_numbers=...)``.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> params = {"embed": jnp.zeros((10, 4)), "dense": {"kernel": jnp.zeros((4, 4)),
      ...           "bias": jnp.zeros(4)}, "lm_head": jnp.zeros((4, 10))}
      >>> dims = gradtx.muon_dimension_numbers(params)
      >>> dims["dense"]["kernel"], dims["dense"]["bias"], dims["embed"], dims["lm_head"]
      (MatrixDimensionNumbers(reduction_axis=0, output_axis=1), None, None, None)
    """
    owner = "muon_dimension_numbers"
    if exclude is not None and not isinstance(exclude, str):
        raise TypeError(
            f"{owner}: exclude must be a regular expression (str) or None, got {exclude!r}"
        )
    try:
        pattern = None if exclude is None else re.compile(exclude)
    except re.error as err:
        raise ValueError(f"{owner}: exclude is not a valid regular expression: {err}") from None

    def spec(path, x):
        if x is None or len(getattr(x, "shape", ())) != 2:
            return None
        if pattern is not None:
            keys = [_tree.path_str((k,)).lower() for k in path]
            if any(pattern.search(k) for k in keys):
                return None
        return MatrixDimensionNumbers()

    return jax.tree_util.tree_map_with_path(spec, params)


def muon(
    learning_rate: ScalarOrSchedule,
    ns_coeffs: Any = MUON_COEFFS,
    ns_steps: int = 5,
    beta: ScalarOrSchedule = 0.95,
    eps: ScalarOrSchedule = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    adam_b1: ScalarOrSchedule = 0.9,
    adam_b2: ScalarOrSchedule = 0.999,
    adam_eps_root: ScalarOrSchedule = 0.0,
    adam_weight_decay: ScalarOrSchedule = 0.0,
    adam_learning_rate: ScalarOrSchedule | None = None,
    muon_weight_dimension_numbers: Any = None,
    consistent_rms: ScalarOrSchedule | None = None,
    bias_correction: bool = True,
    dtype: Any = None,
) -> GradientTransformation:
    r"""Muon: momentum orthogonalized by Newton–Schulz for the matrices, AdamW for the rest.

    For the matrices (see ``muon_weight_dimension_numbers``):
    ``chain(scale_by_muon(...), scale_by_shape(consistent_rms), add_decayed_weights(λ),
    scale_by_learning_rate(η))``,

    .. math::
      \theta_t = \theta_{t-1} - \eta_t \left( s\, \mathrm{NS}(u_t) + \lambda\, \theta_{t-1}
      \right), \qquad s = \sqrt{\max(1, \mathrm{cols}/\mathrm{rows})}
      \ \text{or}\ \rho \sqrt{\max(\mathrm{rows}, \mathrm{cols})},

    with :math:`u_t` the (Nesterov) momentum of :func:`gradtx.scale_by_muon`. Every other leaf
    takes an AdamW step: ``adamw(adam_learning_rate or η, adam_b1, adam_b2, eps,
    adam_eps_root, weight_decay=adam_weight_decay, nesterov=nesterov)``. Both groups are one
    :func:`gradtx.partition` (labels ``"muon"`` and ``"adam"``), so their hyperparameters are
    read and set as ``"muon/learning_rate"``... where a name is shared.

    PyTorch's ``torch.optim.Muon(lr, weight_decay, momentum, nesterov, eps=1e-7)`` on a matrix
    is ``muon(lr, beta=momentum, weight_decay=weight_decay, nesterov=nesterov, eps=0.0,
    bias_correction=False)`` (with ``adjust_lr_fn="match_rms_adamw"``: ``consistent_rms=0.2``);
    it divides by ``max(||u||, 1e-7)`` where this adds ``eps``, the same for norms above 1e-7.

    Args:
      learning_rate: η >= 0 (no default, as in optax).
      ns_coeffs: Newton–Schulz's (a, b, c), a table with one row per step, or a name as in
        optax: ``"standard"`` (Muon's, the default) or ``"dion"`` (Ahn et al., 2025). Kept
        in the state, as optax keeps them (:class:`gradtx.contrib.MuonState`).
      ns_steps: Newton–Schulz steps, fixed when built. Default 5.
      beta: β in [0, 1), the momentum's decay. Default 0.95.
      eps: ε >= 0, added to each matrix's norm and Adam's denominator. Default 1e-8.
      weight_decay: λ >= 0, decoupled, for the matrices. Default 0 (optax's).
      weight_decay_mask: which matrices decay, as :func:`gradtx.add_decayed_weights`'s mask.
      mu_dtype: dtype of both groups' first moments (default: the params').
      nesterov: Nesterov momentum for both groups. Default True.
      adaptive: scale each orthogonalized matrix by its dual norm. Default False.
      preconditioning: the scaling before Newton–Schulz: ``"frobenius"`` (default),
        ``"spectral"``, ``"schatten"`` or ``"aol"`` (see
        :func:`gradtx.orthogonalize_via_newton_schulz`).
      adam_b1: β₁ in [0, 1) of the AdamW group. Default 0.9.
      adam_b2: β₂ in [0, 1) of the AdamW group. Default 0.999.
      adam_eps_root: ε inside the AdamW group's root, >= 0. Default 0.
      adam_weight_decay: the AdamW group's decoupled decay, >= 0. Default 0.
      adam_learning_rate: the AdamW group's learning rate (default None: η).
      muon_weight_dimension_numbers: which leaves are matrices and how: None (default:
        :func:`gradtx.muon_dimension_numbers`, every rank-2 leaf except embeddings and output
        heads), or, as in optax, a tree of :class:`gradtx.MatrixDimensionNumbers` with None
        for the leaves that go to AdamW, or a function of the params returning one (e.g.
        ``lambda p: gradtx.muon_dimension_numbers(p, exclude=None)`` for optax's default,
        every rank-2 leaf).
      consistent_rms: ρ >= 0 for the RMS-matching scale (0.2 matches AdamW's RMS), or None
        (default) for :math:`\sqrt{\max(1, \mathrm{cols}/\mathrm{rows})}`.
      bias_correction: Muon's momentum debiased as optax does (default) or not (PyTorch).
      dtype: the dtype Newton–Schulz runs in (default: at least float32).

    Returns:
      A :class:`GradientTransformation`.

    Example:
      >>> import gradtx, jax.numpy as jnp
      >>> params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
      >>> tx = gradtx.muon(learning_rate=0.02)
      >>> state = tx.init(params)
      >>> grads = {"w": jnp.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]]), "b": jnp.ones(2)}
      >>> updates, state = tx.update(grads, state, params)
      >>> updates["w"].round(3)  # -0.02 NS(g): both singular values near 1
      Array([[-0.022, -0.   ],
             [-0.   , -0.014],
             [-0.   , -0.   ]], dtype=float32)
      >>> updates["b"]  # Nesterov AdamW's first step: -0.02 (1 + 0.9 / 1.9) sign(g)
      Array([-0.02947368, -0.02947368], dtype=float32)

    References:
      Jordan, Jin, Boza, You, Cesista, Newhouse and Bernstein, *Muon: An optimizer for hidden
      layers in neural networks*, 2024 (kellerjordan.github.io/posts/muon); Liu et al., *Muon
      is Scalable for LLM Training*, 2025.
    """
    owner = "muon"
    fixed = muon_arguments(
        owner,
        ns_coeffs,
        ns_steps,
        mu_dtype,
        nesterov,
        adaptive,
        preconditioning,
        bias_correction,
        dtype,
    )
    storage = check_storage(owner, mu_dtype, None, 32, MIN_8BIT_SIZE)
    check_mask(owner, "weight_decay_mask", weight_decay_mask)
    given = muon_weight_dimension_numbers

    def dimension_numbers(tree):
        spec = muon_dimension_numbers(tree) if given is None else given
        return (
            spec(tree) if callable(spec) and not isinstance(spec, MatrixDimensionNumbers) else spec
        )

    def labels(params):
        specs = leaf_dimension_numbers(
            owner, "muon_weight_dimension_numbers", dimension_numbers, params
        )
        flat, treedef = jax.tree.flatten(params)
        return treedef.unflatten(["adam" if s is None else "muon" for s in specs])

    def build(
        learning_rate,
        beta,
        eps,
        weight_decay,
        adam_b1,
        adam_b2,
        adam_eps_root,
        adam_weight_decay,
        adam_learning_rate,
        consistent_rms,
    ):
        matrices = chain(
            _scale_by_muon(beta, eps, dimension_numbers=dimension_numbers, **fixed),
            _scale_by_shape(consistent_rms, dimension_numbers=dimension_numbers, owner=owner),
            _add_decayed_weights(weight_decay, weight_decay_mask),
            _scale_by_learning_rate(learning_rate),
        )
        others = chain(
            _scale_by_adam(
                adam_b1, adam_b2, eps, adam_eps_root, nesterov=fixed["nesterov"], **storage
            ),
            _add_decayed_weights(adam_weight_decay),
            _scale_by_learning_rate(
                learning_rate if adam_learning_rate is None else adam_learning_rate
            ),
        )
        return partition({"muon": matrices, "adam": others}, labels)

    return live(
        owner,
        build,
        optional=("adam_learning_rate", "consistent_rms"),
        ranges=MuonState.live_ranges,
        learning_rate=learning_rate,
        beta=beta,
        eps=eps,
        weight_decay=weight_decay,
        adam_b1=adam_b1,
        adam_b2=adam_b2,
        adam_eps_root=adam_eps_root,
        adam_weight_decay=adam_weight_decay,
        adam_learning_rate=adam_learning_rate,
        consistent_rms=consistent_rms,
    )
