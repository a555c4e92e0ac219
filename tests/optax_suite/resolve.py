"""optax's public names, gradtx's counterparts, and module views that resolve one to the other."""

from __future__ import annotations

import builtins
import functools
import importlib
import inspect
import os
import sys
import threading
import types

import optax

import gradtx

# Public subpackages whose names gradtx takes over (optax.X and gradtx.X). The others are
# outside gradtx's concern (losses, assignment, perturbations, projections, experimental): their
# names stay optax's and count for neither library.
GRADTX_SUBPACKAGES = (
    "contrib",
    "schedules",
    "transforms",
    "tree_utils",
    "tree",
    "second_order",
    "microbatching",
)
NEUTRAL_SUBPACKAGES = ("losses", "assignment", "perturbations", "projections", "experimental")

OPTAX_DIR = os.path.dirname(optax.__file__)


class Used:
    """The public names touched by the running test: gradtx's, and optax's that gradtx lacks."""

    def __init__(self):
        self.local = threading.local()

    def start(self):
        self.local.names = {"gradtx": set(), "optax": set()}

    def stop(self):
        names = getattr(self.local, "names", None)
        self.local.names = None
        return names or {"gradtx": set(), "optax": set()}

    def add(self, library, name):
        names = getattr(self.local, "names", None)
        if names is not None:
            names[library].add(name)


USED = Used()


# Names optax binds for its users but leaves out of a module's __all__. optax.MaskedNode is one:
# optax.masked's docstring tells users to test for it (is_leaf=... isinstance(v,
# optax.MaskedNode)), and optax's tests reach it as _masking.MaskedNode.
_UNLISTED = {"optax": ("MaskedNode",), "optax.transforms": ("MaskedNode",)}


def _public(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in dir(module) if not n.startswith("_")]
    return [*names, *_UNLISTED.get(module.__name__, ())]


def _own(obj):
    """Whether optax defines obj (type aliases and re-exported JAX or chex objects are not)."""
    return getattr(obj, "__module__", None) is not None and obj.__module__.startswith("optax")


def _namespace(subpackage):
    """gradtx's namespace of optax's subpackage's name (gradtx.contrib, ...), if it has one."""
    try:
        return importlib.import_module("gradtx." + subpackage)
    except ImportError:
        return None


def _gradtx_counterpart(subpackage, name):
    if subpackage:
        namespace = _namespace(subpackage)
        if namespace is not None and hasattr(namespace, name):
            return True, getattr(namespace, name)
        if subpackage in ("tree",):
            return False, None
    if hasattr(gradtx, name):
        return True, getattr(gradtx, name)
    return False, None


def _optax_objects(subpackages):
    """(subpackage, qualified name, object) of each public object optax defines in
    ``subpackages`` ("" for the top level); modules, type aliases and re-exports left out."""
    with _quiet_deprecations():
        for subpackage in subpackages:
            module = importlib.import_module("optax." + subpackage if subpackage else "optax")
            prefix = "optax." + subpackage + "." if subpackage else "optax."
            for name in _public(module):
                obj = getattr(module, name, None)
                if obj is not None and not isinstance(obj, types.ModuleType) and _own(obj):
                    yield subpackage, prefix + name, obj


def _neutral(subpackage, obj):
    return subpackage in NEUTRAL_SUBPACKAGES or obj.__module__.startswith(
        tuple("optax." + s for s in NEUTRAL_SUBPACKAGES)
    )


@functools.cache
def public_names():
    """{id(optax object): (qualified name, kind, gradtx object)}, kind gradtx/optax/neutral.

    One object may be public under several names (``optax.EmptyState`` is also
    ``optax.AdaptiveGradClipState``): the first name gradtx has wins, else the first, top-level
    one.
    """
    table = {}
    for subpackage, qualified, obj in _optax_objects(
        ("",) + GRADTX_SUBPACKAGES + NEUTRAL_SUBPACKAGES
    ):
        if id(obj) in table and table[id(obj)][1] != "optax":
            continue
        if _neutral(subpackage, obj):
            table[id(obj)] = (qualified, "neutral", None)
            continue
        found, counterpart = _gradtx_counterpart(subpackage, qualified.rsplit(".", 1)[1])
        if found or id(obj) not in table:
            table[id(obj)] = (qualified, "gradtx" if found else "optax", counterpart)
    return table


@functools.cache
def missing_names():
    """optax's public names (outside the neutral subpackages) that gradtx does not have, aliases
    included."""
    return sorted(
        {
            qualified
            for subpackage, qualified, obj in _optax_objects(("",) + GRADTX_SUBPACKAGES)
            if not _neutral(subpackage, obj)
            and not _gradtx_counterpart(subpackage, qualified.rsplit(".", 1)[1])[0]
        }
    )


class _quiet_deprecations:
    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", DeprecationWarning)

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)


def _recording(obj, library, name):
    """obj itself for classes and values; a function that records its calls for functions."""
    if not (inspect.isfunction(obj) or isinstance(obj, functools.partial)):
        return obj

    @functools.wraps(obj)
    def call(*args, **kwargs):
        USED.add(library, name)
        return obj(*args, **kwargs)

    return call


_VIEWS: dict[str, types.ModuleType] = {}
_RESOLVED: dict[int, object] = {}


def _private(obj):
    """Whether obj is one of optax's own functions or classes that optax does not make public
    but gradtx has under the same name (``optax._src.base.with_extra_args_support``, the class
    of ``multi_normal``'s distributions): a test that uses one runs optax's version of something
    gradtx has, whatever it does with gradtx's. optax's other unlisted helpers (``abs_sq``,
    ``x64_precision``) are the test's arithmetic and are not counted."""
    module = getattr(obj, "__module__", None) or ""
    return (
        (inspect.isfunction(obj) or inspect.isclass(obj))
        and module.startswith("optax")
        and not module.startswith(tuple("optax." + s for s in NEUTRAL_SUBPACKAGES))
        and not module.endswith(("test_utils", "_test"))
        and hasattr(gradtx, getattr(obj, "__name__", ""))
    )


def _resolve(obj, qualified=None):
    entry = public_names().get(id(obj))
    if entry is None:
        if qualified is not None and _private(obj):
            # recorded at each access, and at each call of a function bound before the test
            USED.add("optax", "(private) " + qualified)
            key = id(obj)
            if key not in _RESOLVED:
                _RESOLVED[key] = _recording(obj, "optax", "(private) " + qualified)
            return _RESOLVED[key]
        return obj
    qualified, kind, counterpart = entry
    if kind == "neutral":
        return obj
    key = id(obj)
    if key not in _RESOLVED:
        target = counterpart if kind == "gradtx" else obj
        _RESOLVED[key] = _recording(target, kind, qualified)
    USED.add(kind, qualified)
    return _RESOLVED[key]


class ModuleView(types.ModuleType):
    """An optax module as a test sees it: public names resolved to gradtx's where it has them."""

    def __init__(self, module):
        super().__init__(module.__name__, module.__doc__)
        object.__setattr__(self, "_module", module)

    def __getattr__(self, name):
        module = object.__getattribute__(self, "_module")
        try:
            value = getattr(module, name)
        except AttributeError:
            full = module.__name__ + "." + name
            if module.__name__.split(".")[0] != "optax":
                raise
            try:
                value = importlib.import_module(full)
            except ImportError:
                raise AttributeError(name) from None
        if isinstance(value, types.ModuleType):
            return view(value) if value.__name__.startswith("optax") else value
        return _resolve(value, module.__name__ + "." + name)

    def __setattr__(self, name, value):
        setattr(object.__getattribute__(self, "_module"), name, value)

    def __dir__(self):
        return dir(object.__getattribute__(self, "_module"))


def view(module):
    if module.__name__ not in _VIEWS:
        _VIEWS[module.__name__] = ModuleView(module)
    return _VIEWS[module.__name__]


def _import(name, globals=None, locals=None, fromlist=(), level=0):
    module = builtins.__import__(name, globals, locals, fromlist, level)
    if level == 0 and name.split(".")[0] == "optax":
        return view(module)
    return module


def load(path):
    """Executes the optax test file at path as a module whose optax imports are views."""
    relative = os.path.relpath(path, os.path.dirname(OPTAX_DIR))
    name = "optax_suite." + relative[:-3].replace(os.sep, ".")
    module = types.ModuleType(name)
    module.__file__ = str(path)
    namespace = dict(vars(builtins))
    namespace["__import__"] = _import
    module.__builtins__ = namespace
    sys.modules[name] = module
    with open(path) as f:
        code = compile(f.read(), str(path), "exec")
    exec(code, module.__dict__)
    return module
