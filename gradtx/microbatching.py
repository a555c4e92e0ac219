"""optax's ``optax.microbatching`` names, for code written against optax.

The functions live in :mod:`gradtx._wrappers.microbatching` and
:mod:`gradtx._wrappers.microbatch_parts`; ``microbatch`` is also ``gradtx.microbatch``.
"""

from gradtx._wrappers.microbatch_parts import AccumulationType as AccumulationType
from gradtx._wrappers.microbatch_parts import Accumulator as Accumulator
from gradtx._wrappers.microbatch_parts import reshape_batch_axis as reshape_batch_axis
from gradtx._wrappers.microbatching import micro_grad as micro_grad
from gradtx._wrappers.microbatching import micro_vmap as micro_vmap
from gradtx._wrappers.microbatching import microbatch as microbatch

__all__ = [
    "AccumulationType",
    "Accumulator",
    "micro_grad",
    "micro_vmap",
    "microbatch",
    "reshape_batch_axis",
]
