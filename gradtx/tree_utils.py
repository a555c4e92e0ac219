"""optax's ``optax.tree_utils``, over gradtx: tree arithmetic, reductions and norms, new trees,
casts, random trees, moment updates, and the state tools (``tree_get``, ``tree_set``, ...) that
also read and write gradtx's live hyperparameters. The unprefixed names are in
:mod:`gradtx.tree`."""

from gradtx._core.state_utils import NamedTupleKey as NamedTupleKey
from gradtx._core.state_utils import tree_get as tree_get
from gradtx._core.state_utils import tree_get_all_with_path as tree_get_all_with_path
from gradtx._core.state_utils import tree_map_params as tree_map_params
from gradtx._core.state_utils import tree_set as tree_set
from gradtx._core.tree_like import tree_batch_shape as tree_batch_shape
from gradtx._core.tree_like import tree_cast as tree_cast
from gradtx._core.tree_like import tree_cast_like as tree_cast_like
from gradtx._core.tree_like import tree_dtype as tree_dtype
from gradtx._core.tree_like import tree_full_like as tree_full_like
from gradtx._core.tree_like import tree_ones_like as tree_ones_like
from gradtx._core.tree_like import tree_random_like as tree_random_like
from gradtx._core.tree_like import tree_split_key_like as tree_split_key_like
from gradtx._core.tree_like import tree_unwrap_random_key_data as tree_unwrap_random_key_data
from gradtx._core.tree_like import tree_zeros_like as tree_zeros_like
from gradtx._core.tree_math import tree_add as tree_add
from gradtx._core.tree_math import tree_add_scale as tree_add_scale
from gradtx._core.tree_math import tree_allclose as tree_allclose
from gradtx._core.tree_math import tree_clip as tree_clip
from gradtx._core.tree_math import tree_conj as tree_conj
from gradtx._core.tree_math import tree_div as tree_div
from gradtx._core.tree_math import tree_max as tree_max
from gradtx._core.tree_math import tree_min as tree_min
from gradtx._core.tree_math import tree_mul as tree_mul
from gradtx._core.tree_math import tree_norm as tree_norm
from gradtx._core.tree_math import tree_real as tree_real
from gradtx._core.tree_math import tree_scale as tree_scale
from gradtx._core.tree_math import tree_size as tree_size
from gradtx._core.tree_math import tree_sub as tree_sub
from gradtx._core.tree_math import tree_sum as tree_sum
from gradtx._core.tree_math import tree_vdot as tree_vdot
from gradtx._core.tree_math import tree_where as tree_where
from gradtx._core.tree_moments import tree_bias_correction as tree_bias_correction
from gradtx._core.tree_moments import tree_update_infinity_moment as tree_update_infinity_moment
from gradtx._core.tree_moments import tree_update_moment as tree_update_moment
from gradtx._core.tree_moments import (
    tree_update_moment_per_elem_norm as tree_update_moment_per_elem_norm,
)

__all__ = [
    "NamedTupleKey",
    "tree_add",
    "tree_add_scale",
    "tree_allclose",
    "tree_batch_shape",
    "tree_bias_correction",
    "tree_cast",
    "tree_cast_like",
    "tree_clip",
    "tree_conj",
    "tree_div",
    "tree_dtype",
    "tree_full_like",
    "tree_get",
    "tree_get_all_with_path",
    "tree_map_params",
    "tree_max",
    "tree_min",
    "tree_mul",
    "tree_norm",
    "tree_ones_like",
    "tree_random_like",
    "tree_real",
    "tree_scale",
    "tree_set",
    "tree_size",
    "tree_split_key_like",
    "tree_sub",
    "tree_sum",
    "tree_unwrap_random_key_data",
    "tree_update_infinity_moment",
    "tree_update_moment",
    "tree_update_moment_per_elem_norm",
    "tree_vdot",
    "tree_where",
    "tree_zeros_like",
]
