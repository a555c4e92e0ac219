"""Checkpoints of states in the layouts gradtx kept before it took optax's (until December 2026).

:func:`gradtx.restore_state` reads a checkpoint by path. These states changed their paths when
they took optax's layout; each converter below maps a checkpoint of the earlier layout onto the
new one, so that a run saved before resumes bit for bit:

* ``scale_by_rms`` / ``scale_by_stddev``: the pieces' tuple (``1/1/{count,ema}``, and
  ``1/{count,ema}`` for the mean) became :class:`ScaleByRmsState` ``nu`` (and ``mu``; with
  ``bias_correction`` also the ``count`` of the ``...WithCountState``);
* ``scale_by_amsgrad``: ``0/{count,ema}``, ``1/0/1/{count,ema}``, ``1/1/nu_max`` (and
  ``1/2/count`` with ``debias_after_max``) became ``count``, ``mu``, ``nu``, ``nu_max``;
* ``scale_by_belief``: ``mu/{count,ema}`` became ``count`` and ``mu``;
* ``scale_by_adan``'s ``count`` became ``t``; ``scale_by_simplified_ademamix``'s ``count`` and
  ``nu`` became ``t`` and ``n``; ``scale_by_ademamix`` gained ``count_m2`` (its ``count``);
* ``scale_by_rprop``'s ``prev_signs`` became ``prev_updates`` (the step size times the sign);
* ``scale_by_schedule`` gained a ``count`` (the table's);
* the line searches' ``info`` lost ``succeeded`` for optax's errors: 0 where it was True, inf
  where it was False (the update never reads them; which condition failed was not kept).
* ``scale_by_muon``'s ``ScaleByMuonState(count, mu)`` became :class:`MuonState`, which keeps
  the Newton–Schulz coefficients as optax's does: ``ns_coeffs`` is the target's (those its
  transformation's ``init`` gives, which the earlier layout fixed when it was built), so the
  target must hold arrays there, not ``ShapeDtypeStruct``.

A converter only acts on a checkpoint that has the earlier layout's paths at the place of the
new state, and leaves everything else to :func:`gradtx.check_state`'s comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from gradtx._core import hyper as _hyper
from gradtx._core.base import OptState
from gradtx._core.checkpoint import _leaf_spec, _nodes
from gradtx._curvature.linesearch import (
    ScaleByBacktrackingLinesearchState,
    ScaleByZoomLinesearchState,
)
from gradtx._transforms.adam_descendants import (
    ScaleByAdemamixState,
    ScaleBySimplifiedAdEMAMixState,
)
from gradtx._transforms.adam_family import ScaleByAmsgradState
from gradtx._transforms.adam_family_moments import ScaleByAdanState, ScaleByBeliefState
from gradtx._transforms.orthogonal import MuonState
from gradtx._transforms.second_moments import (
    ScaleByRmsState,
    ScaleByRmsWithCountState,
    ScaleByRStdDevState,
    ScaleByRStdDevWithCountState,
)
from gradtx._transforms.sign import ScaleByRpropState
from gradtx._transforms.step_size import ScaleByScheduleState

Path = tuple[str, ...]
Leaves = dict[Path, Any]  # a node's leaves by path relative to it


def _moved(sub: Leaves, moves: dict[Path, Path | None]) -> Leaves:
    """``sub`` with each path under a key of ``moves`` moved under its value (None: dropped)."""
    out: Leaves = {}
    for path, leaf in sub.items():
        for old, new in moves.items():
            if path[: len(old)] == old:
                if new is not None:
                    out[new + path[len(old) :]] = leaf
                break
        else:
            out[path] = leaf
    return out


def _rms(node: Any, sub: Leaves) -> Leaves | None:
    if ("1", "1", "count") not in sub:
        return None
    count = ("count",) if isinstance(node, ScaleByRmsWithCountState) else None
    return _moved(sub, {("1", "1", "ema"): ("nu",), ("1", "1", "count"): count})


def _stddev(node: Any, sub: Leaves) -> Leaves | None:
    if ("1", "count") not in sub or ("2", "1", "count") not in sub:
        return None
    count = ("count",) if isinstance(node, ScaleByRStdDevWithCountState) else None
    moves = {
        ("1", "ema"): ("mu",),
        ("2", "1", "ema"): ("nu",),
        ("1", "count"): count,
        ("2", "1", "count"): None,
    }
    return _moved(sub, moves)


def _amsgrad(node: Any, sub: Leaves) -> Leaves | None:
    if ("0", "count") not in sub:
        return None
    moves = {
        ("0", "count"): ("count",),
        ("0", "ema"): ("mu",),
        ("1", "0", "1", "ema"): ("nu",),
        ("1", "0", "1", "count"): None,
        ("1", "1", "nu_max"): ("nu_max",),
        ("1", "2", "count"): None,  # debias_after_max's bias correction
    }
    return _moved(sub, moves)


def _belief(node: Any, sub: Leaves) -> Leaves | None:
    if ("count",) in sub or ("mu", "count") not in sub:
        return None
    return _moved(sub, {("mu", "count"): ("count",), ("mu", "ema"): ("mu",)})


def _adan(node: Any, sub: Leaves) -> Leaves | None:
    return _moved(sub, {("count",): ("t",)}) if ("count",) in sub else None


def _simplified_ademamix(node: Any, sub: Leaves) -> Leaves | None:
    return _moved(sub, {("count",): ("t",), ("nu",): ("n",)}) if ("count",) in sub else None


def _ademamix(node: Any, sub: Leaves) -> Leaves | None:
    if ("count_m2",) in sub or ("count",) not in sub:
        return None
    return {**sub, ("count_m2",): sub[("count",)]}  # both count every update


def _rprop(node: Any, sub: Leaves) -> Leaves | None:
    signs = {p[1:]: x for p, x in sub.items() if p[:1] == ("prev_signs",)}
    if not signs:
        return None
    out = {p: x for p, x in sub.items() if p[:1] != ("prev_signs",)}
    for rest, sign in signs.items():
        size = np.asarray(sub.get(("step_sizes", *rest), 0))
        out[("prev_updates", *rest)] = (size * np.asarray(sign)).astype(np.asarray(sign).dtype)
    return out


def _muon(node: Any, sub: Leaves) -> Leaves | None:
    if ("ns_coeffs",) in sub or ("count",) not in sub:
        return None
    if not isinstance(node.ns_coeffs, (np.ndarray, jax.Array)):
        return None  # an abstract target (ShapeDtypeStruct): no coefficients to fill in
    return {**sub, ("ns_coeffs",): node.ns_coeffs}


def _info_errors(fields: tuple[str, ...]) -> Callable[[Any, Leaves], Leaves | None]:
    def convert(node: Any, sub: Leaves) -> Leaves | None:
        if ("info", "succeeded") not in sub:
            return None
        out = dict(sub)
        succeeded = np.asarray(out.pop(("info", "succeeded")))
        for name in fields:
            dtype = _leaf_spec(getattr(node.info, name))[1]
            out[("info", name)] = np.where(succeeded, 0, np.inf).astype(dtype)
        return out

    return convert


_CONVERTERS: dict[type, Callable[[Any, Leaves], Leaves | None]] = {
    ScaleByRmsState: _rms,
    ScaleByRmsWithCountState: _rms,
    ScaleByRStdDevState: _stddev,
    ScaleByRStdDevWithCountState: _stddev,
    ScaleByAmsgradState: _amsgrad,
    ScaleByBeliefState: _belief,
    ScaleByAdanState: _adan,
    ScaleBySimplifiedAdEMAMixState: _simplified_ademamix,
    ScaleByAdemamixState: _ademamix,
    ScaleByRpropState: _rprop,
    MuonState: _muon,
    ScaleByBacktrackingLinesearchState: _info_errors(("decrease_error",)),
    ScaleByZoomLinesearchState: _info_errors(("decrease_error", "curvature_error")),
}


def _schedule_counts(target: OptState, have: dict[Path, Any], converted: list[str]) -> None:
    """A ``scale_by_schedule`` state saved without its count: the count of its table."""
    for at, node in _nodes(target, _hyper.HyperState, "inner_state"):
        if not isinstance(node.inner_state, ScaleByScheduleState):
            continue
        (key,) = node.table
        count, table = at + ("inner_state", "count"), at + ("table", key)
        if count in have or table not in have:
            continue
        rows = np.asarray(have[table]).astype(np.int64)
        steps = rows[..., 0, 0] * _hyper._HALF + rows[..., 0, 1]
        have[count] = steps.astype(_leaf_spec(node.inner_state.count)[1])
        converted.append(type(node.inner_state).__name__)


def convert(target: OptState, have: dict[Path, Any]) -> tuple[dict[Path, Any], list[str]]:
    """``have`` (a checkpoint's leaves by path) with every state of ``target`` saved in its
    earlier layout converted; and the names of the states converted."""
    have, converted = dict(have), []
    for kind, converter in _CONVERTERS.items():
        for at, node in _nodes(target, kind, ""):
            sub = {p[len(at) :]: x for p, x in have.items() if p[: len(at)] == at}
            new = converter(node, sub)
            if new is None:
                continue
            for path in sub:
                del have[at + path]
            have.update({at + path: x for path, x in new.items()})
            converted.append(kind.__name__)
    _schedule_counts(target, have, converted)
    return have, converted
