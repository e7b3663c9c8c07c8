"""Dispatch and context: which backend and which device run a call (one rule, one place).

Backend: per-call ``backend=`` > innermost :func:`use` > the inputs' own kind > ``"numpy"``.
Device: per-call ``device=`` > the device given by the :func:`use` that chose the backend >
the inputs' common device > the backend's default (``"cpu"``).

The hot path (no context, no explicit choice, inputs of one kind) costs a context-variable
read and one dict lookup per input type: no imports, no ``isinstance`` chains.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import inspect
import sys
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar, cast

import numpy as np

from xback.backends import KNOWN_BACKENDS, Backend

__all__ = [
    "backend_of",
    "bring",
    "cached_kind",
    "choose",
    "current_context",
    "device",
    "get_backend",
    "get_device",
    "layout_error",
    "load_backend",
    "loaded_backends",
    "neutral_to_numpy",
    "normalize_device",
    "nothing_chosen",
    "owner",
    "prepare",
    "prepare1",
    "reraise_layout",
    "resolve",
    "trace_constant",
    "tracing",
    "use",
]

F = TypeVar("F", bound=Callable[..., Any])

_NEUTRAL_TYPES: tuple[type, ...] = (bool, int, float, complex, list, tuple)


class _Context(NamedTuple):
    backend: Backend | None
    device: str | None  # raw (unvalidated) when backend is None, else canonical
    route: bool | None = None  # None: the process default (xback._routing)


_EMPTY = _Context(None, None, None)
_STATE: contextvars.ContextVar[_Context] = contextvars.ContextVar("xback_state", default=_EMPTY)


# The open use blocks of the current context (thread, asyncio task), innermost first, as a
# linked stack of (use object, the token its __enter__ made, the blocks below): the token each
# __exit__ resets is the one its own context's __enter__ made, so that one use object can be
# entered from several threads and tasks at once. Immutable (plain tuples, the cheapest to
# build), so a task's copy of the context never sees another task's blocks.
_Entered = tuple[Any, "contextvars.Token[_Context]", Any]
_ENTERED: contextvars.ContextVar[_Entered | None] = contextvars.ContextVar(
    "xback_entered", default=None
)

# Compiled code (torch.compile): Dynamo cannot read a ContextVar, so traced calls read these
# two instead, and the compiled function is guarded on what they held when it was traced.
# _USE_SEEN: whether a use() block was ever entered in this process (False: no choice can
# exist, the context is _EMPTY without a read; never reset, since a context copied inside a
# block, as asyncio tasks copy it, may hold the choice after the block exits);
# _MIRROR.state: this thread's innermost choice, set by use.__enter__/__exit__ (asyncio tasks
# of one thread share it).
_USE_SEEN = False
_MIRROR = threading.local()
_IS_COMPILING: Callable[[], bool] | None = None  # torch.compiler.is_compiling, once known


def _set_state(state: _Context) -> contextvars.Token[_Context]:
    """Make ``state`` the current choice (of this context, and of this thread's mirror that
    compiled code reads); the token resets it (:func:`_reset_state`)."""
    global _USE_SEEN
    _USE_SEEN = True
    _MIRROR.state = state
    return _STATE.set(state)


def _reset_state(token: contextvars.Token[_Context]) -> None:
    _STATE.reset(token)
    _MIRROR.state = _STATE.get()

# Loaded backends by name, and the backend owning each type seen so far (None: neutral).
_LOADED: dict[str, Backend] = {}
_TYPE_CACHE: dict[type, Backend | None] = {}
# Types whose instances are converted to their backend's plain array type first (np.matrix,
# np.memmap: Backend.converts). Kept out of _TYPE_CACHE, so that the hot path's lookup there
# misses for them and takes resolve(), which converts; plain ndarrays pay nothing.
_CONVERTED: dict[type, Backend] = {}
# (backend name, device as given) -> canonical device string
_DEVICE_CACHE: dict[tuple[str, Any], str] = {}

#: ``cached_kind(type(x))``: the backend owning arrays of ``x``'s type when that type has
#: been seen, else None (a neutral Python object, or a type not seen yet, or one whose
#: instances are converted first: then :func:`owner` gives the answer). The hot path's
#: type lookup, a dict's own ``get`` (no Python frame).
cached_kind: Callable[[type], Backend | None] = _TYPE_CACHE.get


def loaded_backends() -> Mapping[str, Backend]:
    """The backends loaded so far, by name: a live read-only view (it grows as
    :func:`load_backend` loads more)."""
    return _LOADED_VIEW


def trace_constant(fn: F) -> F:
    """Mark ``fn`` as a constant for ``torch.compile``: Dynamo calls it while tracing, on
    constant arguments (dtype objects, backends, strings, numbers), and keeps its result,
    instead of tracing its body. For the front layer's dtype rules, written with NumPy dtype
    objects that Dynamo cannot trace: ``fn`` must be a pure function of its arguments
    (caches allowed) returning Python constants or library dtype objects. This is what
    ``torch.compiler.assume_constant_result`` does, without importing torch; in eager calls
    it changes nothing."""
    fn._dynamo_marked_constant = True  # type: ignore[attr-defined]
    return fn


# -- backends ---------------------------------------------------------------------------------
def load_backend(name: str) -> Backend:
    """Return the backend called ``name``, importing its module (and library) on first use.

    Raises ``ValueError`` for an unknown name, ``ImportError`` with the pip command when the
    backend's library is not installed, ``TypeError`` when ``name`` is not a string.
    """
    global _IS_COMPILING
    try:
        return _LOADED[name]
    except (KeyError, TypeError):
        pass
    if not isinstance(name, str):
        raise TypeError(
            f"backend must be a str such as {sorted(KNOWN_BACKENDS)}, got {type(name).__name__}"
        )
    try:
        module_name, package, requirement = KNOWN_BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown backend {name!r}; available backends: {', '.join(sorted(KNOWN_BACKENDS))}"
        ) from None
    if package not in sys.modules:
        try:
            importlib.import_module(package)
        except ImportError as exc:
            raise ImportError(
                f"backend {name!r} needs the {package!r} package, which is not installed: "
                f"pip install \"{requirement}\""
            ) from exc
    module = sys.modules.get(module_name)
    if module is None:
        module = _import_backend_module(module_name)
    made = getattr(module, "BACKEND", None)
    backend = cast(Backend, made if made is not None else module.make_backend(name))
    _LOADED[name] = backend
    if name == "torch":
        _IS_COMPILING = sys.modules["torch"].compiler.is_compiling
    return backend


def _import_backend_module(module_name: str) -> Any:
    """Import a backend module. The torch backend's by an import statement: a tensor's
    first call may come inside ``torch.compile``, whose tracer runs import statements but
    cannot trace :func:`importlib.import_module`."""
    if module_name == "xback.backends.torch":
        import xback.backends.torch as module

        return module
    return importlib.import_module(module_name)


_LOADED_VIEW: Mapping[str, Backend] = MappingProxyType(_LOADED)
_NUMPY: Backend = load_backend("numpy")


def _classify(tp: type) -> Backend | None:
    """Backend owning arrays of type ``tp`` (None for neutral Python objects); cached (in
    ``_CONVERTED`` for the types whose instances :func:`owner` converts)."""
    if issubclass(tp, _NEUTRAL_TYPES):
        result: Backend | None = None
    else:
        for name, (_, package, _) in KNOWN_BACKENDS.items():
            # Never import a library the caller has not imported: an instance of its array
            # type cannot exist unless its module is loaded.
            if package in sys.modules and load_backend(name).owns(tp):
                result = load_backend(name)
                break
        else:
            raise TypeError(
                f"unsupported array type {tp.__module__}.{tp.__qualname__}; xback accepts "
                f"the arrays of its registered backends ({', '.join(KNOWN_BACKENDS)}), "
                f"NumPy scalars, and Python scalars, lists and tuples"
            )
    if result is not None and result.converts(tp):
        _CONVERTED[tp] = result
    else:
        _TYPE_CACHE[tp] = result
    return result


def owner(x: Any) -> tuple[Backend | None, Any]:
    """Backend owning ``x`` and ``x`` as that backend's plain array: the slow path of a
    ``_TYPE_CACHE`` lookup (a type seen for the first time, or one whose instances are
    converted first: ``np.matrix`` and ``np.memmap`` become ``np.ndarray`` views, no copy).
    Raises ``TypeError`` for unsupported types."""
    tp = type(x)
    try:
        return _TYPE_CACHE[tp], x
    except KeyError:
        pass
    try:
        b = _CONVERTED[tp]
    except KeyError:
        k = _classify(tp)
        if k is None or tp not in _CONVERTED:
            return k, x
        b = k
    return b, b.plain(x)


def kind_of(x: Any) -> Backend | None:
    """Backend owning ``x`` (None for Python scalars, lists, tuples)."""
    try:
        return _TYPE_CACHE[type(x)]
    except KeyError:
        try:
            return _CONVERTED[type(x)]
        except KeyError:
            return _classify(type(x))


def layout_error(b: Backend, **named: Any) -> TypeError | None:
    """The ``TypeError`` for the first of the named inputs (arrays of ``b``) that ``b``
    cannot compute on (a sparse or nested torch tensor: :meth:`Backend.layout_problem`),
    or ``None``. Checked up front where it costs little against the operation, and on the
    error path of the others (the caller then raises it from the backend's exception)."""
    for name, x in named.items():
        problem = b.layout_problem(x)
        if problem is not None:
            return TypeError(problem.format(name=name))
    return None


def reraise_layout(b: Backend, exc: Exception, **named: Any) -> None:
    """On the error path of an operation on arrays of ``b``: raise :func:`layout_error`'s
    ``TypeError`` from ``exc`` when one of the named inputs has a layout ``b`` cannot
    compute on; otherwise return (the caller re-raises ``exc``)."""
    err = layout_error(b, **named)
    if err is not None:
        raise err from exc


def backend_of(x: Any) -> str:
    """Name of the registered backend that owns ``x`` (``"numpy"``, ``"torch"``, ``"dask"``...).

    Parameters
    ----------
    x : array
        An array of a registered backend's library: a NumPy array or scalar, a
        ``torch.Tensor``, a dask array, an Array API library's array.

    Returns
    -------
    str
        The backend name.

    Raises
    ------
    TypeError
        For Python scalars, lists and tuples (they have no kind of their own and take the
        chosen backend) and for unsupported types.

    Examples
    --------
    >>> import numpy as np, xback
    >>> xback.backend_of(np.zeros(3))
    'numpy'
    """
    b = kind_of(x)
    if b is None:
        raise TypeError(
            f"a {type(x).__name__} has no backend of its own: it takes the chosen backend "
            f"(per-call backend=, xback.use(...), or the default 'numpy')"
        )
    return b.name


# -- devices ----------------------------------------------------------------------------------
def _device_key(dev: Any) -> Any:
    """Hashable key for a device argument (a str or a torch.device)."""
    if isinstance(dev, str):
        return dev
    if type(dev).__name__ == "device" and type(dev).__module__.startswith("torch"):
        return str(dev)
    raise TypeError(
        f"device must be a str such as 'cpu', 'cuda', 'cuda:1', 'mps', 'meta' or a "
        f"torch.device, got {type(dev).__name__}"
    )


def normalize_device(backend: Backend, dev: Any) -> str:
    """Canonical device string for ``dev`` on ``backend`` (validated once, then cached)."""
    try:
        return _DEVICE_CACHE[backend.name, dev]
    except (KeyError, TypeError):
        pass
    key = _device_key(dev)
    try:
        canonical = _DEVICE_CACHE[backend.name, key]
    except KeyError:
        canonical = backend.normalize_device(key)
        _DEVICE_CACHE[backend.name, key] = canonical
    if isinstance(dev, str):
        _DEVICE_CACHE[backend.name, dev] = canonical
    return canonical


def device(x: Any) -> str:
    """Normalised device string of an array: ``"cpu"``, ``"cuda:0"``, ``"meta"``...

    Parameters
    ----------
    x : array_like
        A NumPy array or scalar, a ``torch.Tensor``, or a Python scalar, list or tuple.

    Returns
    -------
    str
        ``"cpu"`` for NumPy arrays and Python objects; for tensors the device with its index
        (``"cuda:0"``, never a bare ``"cuda"``), ``"mps:0"`` or ``"meta"``. Two arrays are
        on the same device exactly when their strings are equal.

    Raises
    ------
    TypeError
        ``x`` is of an unsupported type.

    Examples
    --------
    >>> import numpy as np, xback
    >>> xback.device(np.zeros(3))
    'cpu'
    >>> xback.device([1.0, 2.0])
    'cpu'
    """
    b = kind_of(x)
    if b is None:
        return "cpu"
    return b.device_of(x)


# -- the context manager ----------------------------------------------------------------------
class use:
    # lower-case on purpose: used like a function, ``with xback.use("torch"):``
    """Choose the backend and/or device for the calls inside a ``with`` block or a function.

    ``use`` is built on :mod:`contextvars`: nestable, exception-safe, local to each thread and
    to each asyncio task; one ``use`` object may be entered from several threads and tasks at
    once (each exit restores its own thread's or task's choice). A device choice travels
    with its backend choice: an inner
    ``use("numpy")`` inside ``use("torch", device="meta")`` runs on the CPU, while
    ``use(device=...)`` alone keeps the outer backend.

    Parameters
    ----------
    backend : str, optional
        A registered backend's name (:data:`xback.backends.KNOWN_BACKENDS`, e.g. ``"numpy"``,
        ``"torch"``, ``"dask"``, ``"array_api_strict"``). ``None`` keeps the enclosing choice.
    device : str or torch.device, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"meta"``.
    route : bool, optional
        ``False`` runs every operation on its backend's own library (no routing of CPU
        work to the faster library, see :mod:`xback._routing`); ``True`` allows it even when the
        ``XBACK_ROUTE=0`` environment variable disabled it. ``None`` keeps the enclosing
        choice. Results are equal either way (sorting bit for bit, linear algebra to float
        rounding); only the speed differs.

    Raises
    ------
    ValueError
        Unknown backend name, or a device the backend cannot use (e.g. ``"cuda"`` without CUDA).
    ImportError
        The backend's library is not installed (the message gives the pip command).

    Examples
    --------
    >>> import xback
    >>> with xback.use("numpy"):
    ...     xback.get_backend()
    'numpy'

    As a decorator (also on ``async def`` functions, generators and async generators, whose
    bodies run under the choice at every resumption while the caller keeps its own between
    them):

    >>> @xback.use("numpy", device="cpu")
    ... def f():
    ...     return xback.get_backend(), xback.get_device()
    >>> f()
    ('numpy', 'cpu')
    """

    __slots__ = ("_backend", "_device", "_route")

    def __init__(
        self, backend: str | None = None, *, device: Any = None, route: bool | None = None
    ) -> None:
        if route is not None and route is not True and route is not False:
            raise TypeError(f"route must be True, False or None, got {route!r}")
        self._route = route
        self._backend = None if backend is None else load_backend(backend)
        if device is not None:
            device = (
                _device_key(device)
                if self._backend is None
                else normalize_device(self._backend, device)
            )
        self._device: str | None = device

    def _new_state(self) -> _Context:
        outer = _STATE.get()
        route = outer.route if self._route is None else self._route
        if self._backend is not None:
            return _Context(self._backend, self._device, route)
        if self._device is None:
            return outer if route is outer.route else _Context(outer.backend, outer.device, route)
        ob = outer.backend
        dev = self._device if ob is None else normalize_device(ob, self._device)
        return _Context(ob, dev, route)

    def __enter__(self) -> use:
        if tracing():
            raise RuntimeError(
                "xback.use(...) cannot be entered inside a function that torch.compile is "
                "tracing: enter it around the call of the compiled function (which is "
                "re-traced when the choice changes), or pass backend= / device= per call"
            )
        _ENTERED.set((self, _set_state(self._new_state()), _ENTERED.get()))
        return self

    def __exit__(self, *exc: object) -> None:
        top = _ENTERED.get()
        if top is not None and top[0] is self:  # always, for with-blocks
            _reset_state(top[1])
            _ENTERED.set(top[2])
            return
        # exited out of order (a generator's block left open across a yield and closed under
        # another block of its caller): close this object's innermost block of this context
        kept: list[_Entered] = []
        while top is not None and top[0] is not self:
            kept.append(top)
            top = top[2]
        if top is None:
            raise RuntimeError(
                f"{self!r} is exited in a thread or asyncio task that did not enter it"
            )
        _reset_state(top[1])
        below = top[2]
        for e in reversed(kept):
            below = (e[0], e[1], below)
        _ENTERED.set(below)

    def __call__(self, fn: F) -> F:
        backend, dev, route = self._backend, self._device, self._route

        if inspect.isasyncgenfunction(fn):
            return cast(F, _hold_async_gen(fn, self))
        if inspect.isgeneratorfunction(fn):
            return cast(F, _hold_gen(fn, self))
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                # Entered inside the coroutine, so the choice holds while it runs.
                with use._from_parts(backend, dev, route):
                    return await fn(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # A fresh context manager per call: safe when called from several threads.
            with use._from_parts(backend, dev, route):
                return fn(*args, **kwargs)

        return cast(F, wrapper)

    @classmethod
    def _from_parts(cls, backend: Backend | None, dev: str | None, route: bool | None) -> use:
        self = cls.__new__(cls)
        self._backend, self._device, self._route = backend, dev, route
        return self

    def __repr__(self) -> str:
        name = None if self._backend is None else self._backend.name
        extra = "" if self._route is None else f", route={self._route!r}"
        return f"xback.use({name!r}, device={self._device!r}{extra})"


def _hold_gen(fn: Callable[..., Any], u: use) -> Callable[..., Any]:
    """``fn`` (a generator function) running under ``u`` at each resumption (next, send,
    throw, close), with the caller's own choice in force between them. A ``use`` block of the
    generator's own left open across a yield is restored at the next resumption."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        gen = fn(*args, **kwargs)
        left: _Context | None = None  # the state the generator left open at its last yield
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            mine = u._new_state() if left is None else left
            token = _set_state(mine)
            try:
                value = gen.send(sent) if thrown is None else gen.throw(thrown)
            except StopIteration as stop:
                return stop.value
            finally:
                now = _STATE.get()
                _reset_state(token)
                thrown = None
            left = None if now == mine else now  # a block of its own, left open
            try:
                sent = yield value
            except GeneratorExit:
                token = _set_state(u._new_state() if left is None else left)
                try:
                    gen.close()
                finally:
                    _reset_state(token)
                raise
            except BaseException as exc:  # gen.throw(...) on the wrapper: into fn's body
                thrown, sent = exc, None

    return wrapper


def _hold_async_gen(fn: Callable[..., Any], u: use) -> Callable[..., Any]:
    """:func:`_hold_gen` for an async generator function (asend, athrow, aclose)."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        agen = fn(*args, **kwargs)
        left: _Context | None = None
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            mine = u._new_state() if left is None else left
            token = _set_state(mine)
            try:
                if thrown is None:
                    value = await agen.asend(sent)
                else:
                    value = await agen.athrow(thrown)
            except StopAsyncIteration:
                return
            finally:
                now = _STATE.get()
                _reset_state(token)
                thrown = None
            left = None if now == mine else now  # a block of its own, left open
            try:
                sent = yield value
            except GeneratorExit:
                token = _set_state(u._new_state() if left is None else left)
                try:
                    await agen.aclose()
                finally:
                    _reset_state(token)
                raise
            except BaseException as exc:
                thrown, sent = exc, None

    return wrapper


def tracing() -> bool:
    """Whether ``torch.compile`` (Dynamo) is tracing this call (constant-folded there)."""
    global _IS_COMPILING
    probe = _IS_COMPILING
    if probe is None:
        torch = sys.modules.get("torch")
        if torch is None:
            return False
        probe = _IS_COMPILING = torch.compiler.is_compiling
    return probe()


def current_context() -> _Context:
    """The choice in effect for this call: ``(backend, device, route)`` of the innermost
    :func:`use` of this thread or asyncio task (``_EMPTY`` when none is open).

    Inside ``torch.compile`` tracing, where a ``ContextVar`` cannot be read, it is read from
    a per-thread mirror, and the compiled function is guarded on it: it is re-traced when
    the choice around its call changes.
    """
    if not _USE_SEEN:
        return _EMPTY
    if tracing():
        state: _Context = getattr(_MIRROR, "state", _EMPTY)
        return state
    return _STATE.get()


def nothing_chosen() -> bool:
    """Whether the current context chooses neither a backend nor a device (outside every
    :func:`use`, or inside ``use(route=...)`` alone): a call then follows its inputs."""
    if not _USE_SEEN:
        return True
    c = current_context()
    return c.backend is None and c.device is None


def get_backend() -> str:
    """Name of the backend chosen by the innermost :func:`use` (``"numpy"`` outside any).

    Outside any ``use`` block a call's backend follows its inputs' kind; this function then
    reports the default for neutral inputs (lists, scalars), ``"numpy"``.

    Returns
    -------
    str
        A registered backend's name (``"numpy"``, ``"torch"``...): the choice of the current
        thread or asyncio task.

    Examples
    --------
    >>> import xback
    >>> xback.get_backend()
    'numpy'
    """
    b = current_context().backend
    return "numpy" if b is None else b.name


def get_device() -> str | None:
    """Device chosen by the innermost :func:`use`, or ``None`` when no device was chosen.

    Returns
    -------
    str or None
        The normalised device string (``"cpu"``, ``"cuda:0"``, ``"meta"``) of the current
        thread or asyncio task; ``None`` when calls take their inputs' device.

    Examples
    --------
    >>> import xback
    >>> with xback.use("numpy", device="cpu"):
    ...     xback.get_device()
    'cpu'
    """
    return current_context().device


# -- resolution: the one rule -----------------------------------------------------------------
def choose(
    backend: str | None, dev: Any, kinds: list[Backend | None], xs: tuple[Any, ...]
) -> tuple[Backend, str | None]:
    """Backend and explicit device (None: take the inputs' common device or the default)."""
    ctx = current_context()
    if ctx is _EMPTY and dev is None and backend is not None:
        try:
            return _LOADED[backend], None  # fast path: an explicit backend, nothing else
        except (KeyError, TypeError):
            pass
    if backend is not None:
        try:
            b = _LOADED[backend]
        except (KeyError, TypeError):
            b = load_backend(backend)
        # A context device travels with the context's backend only.
        ctx_dev = ctx.device if (ctx.backend is b) else None
    elif ctx.backend is not None:
        b, ctx_dev = ctx.backend, ctx.device
    else:
        ctx_dev = ctx.device  # from use(device=...) alone: raw, applies to the inputs' kind
        owners = {k for k in kinds if k is not None}
        if len(owners) > 1:
            names = sorted(k.name for k in owners)
            kinds_desc = " and ".join(
                f"{n} ({', '.join(type(x).__module__.split('.')[0] + '.' + type(x).__name__ for x, k in zip(xs, kinds) if k is not None and k.name == n)})"  # noqa: E501
                for n in names
            )
            raise TypeError(
                f"inputs mix array kinds: {kinds_desc}; choose one backend with "
                f"backend=... or `with xback.use(...)`"
            )
        b = owners.pop() if owners else _NUMPY
    if dev is None:
        if ctx_dev is None:
            return b, None
        dev = ctx_dev
    try:
        return b, _DEVICE_CACHE[b.name, dev]
    except (KeyError, TypeError):
        return b, normalize_device(b, dev)


def bring(b: Backend, x: Any, k: Backend | None, dev: str) -> Any:
    """``x`` as an array of backend ``b`` on ``dev`` (zero-copy on the CPU when possible)."""
    if k is b:
        return x if b.device_of(x) == dev else b.to_device(x, dev)
    if tracing():
        src = "Python objects" if k is None else f"{k.name} arrays"
        raise TypeError(
            f"inside torch.compile xback cannot bring {src} to the {b.name!r} backend (a "
            f"conversion through NumPy, which tracing cannot follow): the backend chosen by "
            f"backend= or xback.use(...) must be the inputs' own; choose "
            f"{'it' if k is None else repr(k.name)}, or convert outside the compiled function"
        )
    a = neutral_to_numpy(x) if k is None else k.to_numpy(x, None)
    return b.from_numpy(a, dev, None)


def neutral_to_numpy(obj: Any, dtype: np.dtype[Any] | None = None) -> np.ndarray[Any, Any]:
    """NumPy array from a Python scalar, list or tuple (NumPy's type inference everywhere:
    Python floats become float64 on every backend, ints int64)."""
    try:
        return np.asarray(obj, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot make an array from this {type(obj).__name__}: {exc}") from exc


def prepare(
    backend: str | None, dev: Any, *xs: Any
) -> tuple[Backend, str, tuple[Any, ...]]:
    """Choose backend and device for inputs ``xs`` and bring every input there.

    Returns ``(backend, device, converted inputs)``. Raises ``TypeError`` for mixed kinds
    with no explicit choice, ``ValueError`` for inputs on different devices with no
    explicit device.
    """
    try:
        kinds = [_TYPE_CACHE[type(x)] for x in xs]
    except KeyError:  # a type seen for the first time, or one converted first (np.matrix)
        resolved = [owner(x) for x in xs]
        kinds = [k for k, _ in resolved]
        xs = tuple(x for _, x in resolved)
    b, target = choose(backend, dev, kinds, xs)
    if target is None:
        devs = {b.device_of(x) for x, k in zip(xs, kinds) if k is b}
        if len(devs) > 1:
            raise ValueError(
                f"inputs are on different devices: {', '.join(sorted(devs))}; move them with "
                f"xback.to_device or choose one with device=... or `with xback.use(...)`"
            )
        target = devs.pop() if devs else "cpu"
    out = tuple(bring(b, x, k, target) for x, k in zip(xs, kinds))
    return b, target, out


def prepare1(x: Any, backend: str | None, dev: Any) -> tuple[Backend, Any]:
    """Single-input :func:`prepare`; the fast path when nothing is chosen explicitly."""
    try:
        k = _TYPE_CACHE[type(x)]
    except KeyError:
        k, x = owner(x)
    if backend is None and dev is None and k is not None and (not _USE_SEEN or nothing_chosen()):
        return k, x
    b, _, (out,) = prepare(backend, dev, x)
    return b, out


# numpy scalar types are numpy's kind
_TYPE_CACHE[np.ndarray] = _NUMPY


def resolve(backend: str | None, dev: Any, *xs: Any) -> tuple[Backend, str]:
    """Backend and device that the one rule chooses for inputs ``xs``, moving nothing.

    The rule and the errors of :func:`prepare` (``TypeError`` for mixed kinds, ``ValueError``
    for inputs on different devices, with no explicit choice); with no inputs, the context's
    backend (or NumPy) and device (or ``"cpu"``). The hot path (one input, nothing chosen)
    is a context read and a dict lookup by the input's type.
    """
    if backend is None and dev is None:
        if nothing_chosen():  # the inputs' kind and device
            if len(xs) == 1:
                x = xs[0]
                try:
                    k = _TYPE_CACHE[type(x)]
                except KeyError:
                    k = _classify(type(x))
                if k is not None:
                    return k, k.device_of(x)
            else:
                own: Backend | None = None
                owned = []
                for x in xs:
                    try:
                        kx = _TYPE_CACHE[type(x)]
                    except KeyError:
                        kx = _classify(type(x))
                    if kx is not None:
                        if own is None:
                            own = kx
                        elif kx is not own:
                            break  # mixed kinds: the general path raises
                        owned.append(x)
                else:
                    if own is not None and own.same_device(*owned):
                        return own, own.device_of(owned[0])
        elif (c := current_context()).backend is not None and c.device is not None:
            for x in xs:  # the context chooses both; inputs are only checked to be arrays
                if type(x) not in _TYPE_CACHE:
                    _classify(type(x))
            return c.backend, c.device
    elif backend is not None and dev is None and len(xs) == 1:
        try:
            b = _LOADED[backend]
        except (KeyError, TypeError):
            pass
        else:
            if current_context().backend is not b:  # a context's device is not this one's
                x = xs[0]
                try:
                    k = _TYPE_CACHE[type(x)]
                except KeyError:
                    k = _classify(type(x))
                return b, (b.device_of(x) if k is b else "cpu")
    kinds = [kind_of(x) for x in xs]
    b, target = choose(backend, dev, kinds, xs)
    if target is None:
        devs = {b.device_of(x) for x, k in zip(xs, kinds) if k is b}
        if len(devs) > 1:
            raise ValueError(
                f"inputs are on different devices: {', '.join(sorted(devs))}; move them with "
                f"xback.to_device or choose one with device=... or `with xback.use(...)`"
            )
        target = devs.pop() if devs else "cpu"
    return b, target
