"""optax's ``optax.tree``: the functions of :mod:`gradtx.tree_utils` without their ``tree_``
prefix (``gradtx.tree.add``, ``gradtx.tree.norm``, ``gradtx.tree.get``, ...). ``max``, ``min``,
``sum`` and ``set`` are these functions here, not the builtins."""

from gradtx._core.state_utils import tree_get as get
from gradtx._core.state_utils import tree_get_all_with_path as get_all_with_path
from gradtx._core.state_utils import tree_map_params as map_params
from gradtx._core.state_utils import tree_set as set
from gradtx._core.tree_like import tree_batch_shape as batch_shape
from gradtx._core.tree_like import tree_cast as cast
from gradtx._core.tree_like import tree_cast_like as cast_like
from gradtx._core.tree_like import tree_dtype as dtype
from gradtx._core.tree_like import tree_full_like as full_like
from gradtx._core.tree_like import tree_ones_like as ones_like
from gradtx._core.tree_like import tree_random_like as random_like
from gradtx._core.tree_like import tree_split_key_like as split_key_like
from gradtx._core.tree_like import tree_unwrap_random_key_data as unwrap_random_key_data
from gradtx._core.tree_like import tree_zeros_like as zeros_like
from gradtx._core.tree_math import tree_add as add
from gradtx._core.tree_math import tree_add_scale as add_scale
from gradtx._core.tree_math import tree_allclose as allclose
from gradtx._core.tree_math import tree_clip as clip
from gradtx._core.tree_math import tree_conj as conj
from gradtx._core.tree_math import tree_div as div
from gradtx._core.tree_math import tree_max as max
from gradtx._core.tree_math import tree_min as min
from gradtx._core.tree_math import tree_mul as mul
from gradtx._core.tree_math import tree_norm as norm
from gradtx._core.tree_math import tree_real as real
from gradtx._core.tree_math import tree_scale as scale
from gradtx._core.tree_math import tree_size as size
from gradtx._core.tree_math import tree_sub as sub
from gradtx._core.tree_math import tree_sum as sum
from gradtx._core.tree_math import tree_vdot as vdot
from gradtx._core.tree_math import tree_where as where
from gradtx._core.tree_moments import tree_bias_correction as bias_correction
from gradtx._core.tree_moments import tree_update_infinity_moment as update_infinity_moment
from gradtx._core.tree_moments import tree_update_moment as update_moment
from gradtx._core.tree_moments import (
    tree_update_moment_per_elem_norm as update_moment_per_elem_norm,
)

__all__ = [
    "add",
    "add_scale",
    "allclose",
    "batch_shape",
    "bias_correction",
    "cast",
    "cast_like",
    "clip",
    "conj",
    "div",
    "dtype",
    "full_like",
    "get",
    "get_all_with_path",
    "map_params",
    "max",
    "min",
    "mul",
    "norm",
    "ones_like",
    "random_like",
    "real",
    "scale",
    "set",
    "size",
    "split_key_like",
    "sub",
    "sum",
    "unwrap_random_key_data",
    "update_infinity_moment",
    "update_moment",
    "update_moment_per_elem_norm",
    "vdot",
    "where",
    "zeros_like",
]
