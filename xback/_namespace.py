"""``xback.namespace``: an Array API namespace bound to the backend and device xback chooses.

The namespace is array-api-compat's namespace for the chosen library (``array_api_compat.numpy``,
``array_api_compat.torch``, ``array_api_strict``, ``jax.numpy``, ``array_api_compat.dask.array``)
with three changes:

* xback's exact functions replace the library's (``sort``, ``argsort``, ``linalg.svd``,
  ``linalg.svdvals``, and every name of :data:`XBACK_FUNCTIONS` that xback defines);
* xback's extensions are added under their own names (:data:`XBACK_EXTENSIONS`);
* creation functions put their results on the chosen device when no ``device=`` is given, and
  ``__array_namespace_info__().default_device()`` reports that device.

One namespace object is built per (backend, device) on first use and cached; the hot path
of :func:`namespace` is :func:`xback._dispatch.resolve` (a context read and a dict lookup by
the input's type) and one dict lookup. Nothing here imports array-api-compat or a library
until a namespace is first built.
"""

from __future__ import annotations

import functools
import inspect
import threading
import types
from collections.abc import Callable
from typing import Any

import numpy as np

import xback
from xback._dispatch import get_device, resolve
from xback.backends import Backend, HostBackend

__all__ = [
    "CREATION_FUNCTIONS",
    "FFT_CREATION_FUNCTIONS",
    "XBACK_EXTENSIONS",
    "XBACK_FUNCTIONS",
    "Namespace",
    "clear_cache",
    "namespace",
]

#: Array API functions that xback computes exactly: namespace name -> xback attribute. Each
#: replaces the library's function when xback defines it (looked up when a namespace is built).
#: ``sort``, ``argsort``, ``linalg.svd`` and ``linalg.svdvals`` are always replaced, with the
#: Array API signatures.
XBACK_FUNCTIONS: dict[str, str] = {
    "searchsorted": "searchsorted",
    "unique_all": "unique_all",
    "unique_counts": "unique_counts",
    "unique_inverse": "unique_inverse",
    "unique_values": "unique_values",
}

#: xback's extensions to the Array API: namespace name -> xback attribute, added when xback
#: defines them (they replace a library function of the same name, e.g. NumPy's ``median``).
XBACK_EXTENSIONS: dict[str, str] = {
    "lstsq_grad": "lstsq_grad",
    "lstsq_grad_fn": "lstsq_grad_fn",
    "median": "median",
    "nanmedian": "nanmedian",
    "nanquantile": "nanquantile",
    "quantile": "quantile",
    "rankdata": "rankdata",
    "top_k": "top_k",
}

#: functions that create arrays and take ``device=``: bound to the namespace's device
CREATION_FUNCTIONS: tuple[str, ...] = (
    "arange", "asarray", "empty", "empty_like", "eye", "from_dlpack", "full", "full_like",
    "linspace", "ones", "ones_like", "zeros", "zeros_like",
)  # fmt: skip
#: the same in the ``fft`` extension
FFT_CREATION_FUNCTIONS: tuple[str, ...] = ("fftfreq", "rfftfreq")

#: module attributes of the library namespace that are copied besides its public names
_KEPT_DUNDERS = ("__array_api_version__", "__array_namespace_info__")


class Namespace(types.ModuleType):
    """An Array API namespace bound to one xback backend and device (see :func:`namespace`).

    Its attributes are those of array-api-compat's namespace for the library, with xback's
    functions and extensions, and device-bound creation functions. Attributes of the library
    namespace that are not copied (lazy ones) are looked up there on first access.
    """

    #: xback backend name: ``"numpy"``, ``"torch"``, ``"array_api_strict"``, ``"jax"``...
    backend: str
    #: canonical device string (``"cpu"``, ``"cuda:0"``, ``"meta"``)
    device: str

    def __getattr__(self, name: str) -> Any:
        lib = self.__dict__.get("_library")
        if lib is None or name.startswith("__"):
            raise AttributeError(name)
        try:
            value = getattr(lib, name)
        except AttributeError:
            raise AttributeError(
                f"the {self.__dict__.get('backend')} namespace ({lib.__name__}) has no "
                f"attribute {name!r}"
            ) from None
        setattr(self, name, value)
        return value

    def __repr__(self) -> str:
        return f"<xback namespace {self.__name__}>"


class _Info:
    """The library's ``__array_namespace_info__()`` with the namespace's default device."""

    __slots__ = ("_device", "_info")

    def __init__(self, info: Any, device: Any) -> None:
        self._info = info
        self._device = device

    def default_device(self) -> Any:
        return self._device

    def __getattr__(self, name: str) -> Any:
        return getattr(self._info, name)


def _bind_device(fn: Callable[..., Any], dev: Any) -> Callable[..., Any]:
    """``fn`` with ``device=dev`` when the caller gives no device (or ``device=None``)."""

    @functools.wraps(fn)
    def bound(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("device") is None:
            kwargs["device"] = dev
        return fn(*args, **kwargs)

    return bound


def _bind_from_dlpack(fn: Callable[..., Any], dev: Any) -> Callable[..., Any]:
    """``from_dlpack`` landing on ``dev`` when no device is given: the library's own import
    (zero-copy where the data is), then a move to ``dev`` if it is elsewhere (``copy=False``
    then raises ``ValueError``, as the standard asks). Works for devices that DLPack cannot
    reach directly (torch's ``meta``)."""
    import array_api_compat

    @functools.wraps(fn)
    def from_dlpack(x: Any, /, **kwargs: Any) -> Any:
        if kwargs.get("device") is not None:
            return fn(x, **kwargs)
        kwargs.pop("device", None)
        y = fn(x, **kwargs)
        if array_api_compat.device(y) == dev:
            return y
        if kwargs.get("copy") is False:
            raise ValueError(
                f"from_dlpack(copy=False): the array is on {array_api_compat.device(y)}, not "
                f"on the namespace's device {dev}; a copy is needed"
            )
        return array_api_compat.to_device(y, dev)

    return from_dlpack


def _backend_arg(b: Backend, x: Any) -> str | None:
    """``backend=`` for an xback call on ``x`` from ``b``'s namespace: ``None`` when xback's
    rule already runs ``x`` on ``b`` with no device chosen (the same result, on xback's fast
    path), else ``b.name``."""
    if get_device() is None and resolve(None, None, x)[0] is b:
        return None
    return b.name


def _bind_backend(fn: Callable[..., Any], b: Backend) -> Callable[..., Any]:
    """xback function ``fn`` run on backend ``b`` unless the caller chooses another."""
    try:
        takes_backend = "backend" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - xback's functions have signatures
        takes_backend = False
    if not takes_backend:
        return fn
    name = b.name

    @functools.wraps(fn)
    def bound(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("backend") is None:
            kwargs["backend"] = _backend_arg(b, args[0]) if len(args) == 1 else name
        return fn(*args, **kwargs)

    return bound


def _exact_functions(b: Backend) -> tuple[dict[str, Any], dict[str, Any]]:
    """xback's ``sort``, ``argsort``, ``svd``, ``svdvals`` with the Array API signatures,
    computing on backend ``b``: (main namespace functions, linalg functions)."""
    xsort, xargsort, xsvd, xsvdvals = xback.sort, xback.argsort, xback.svd, xback.svdvals

    def sort(x: Any, /, *, axis: int = -1, descending: bool = False, stable: bool = True) -> Any:
        backend = _backend_arg(b, x)
        if axis.__class__ is int and axis == -1:  # xback's default: its fast path
            return xsort(x, descending=descending, stable=stable, backend=backend)
        return xsort(x, axis=axis, descending=descending, stable=stable, backend=backend)

    def argsort(
        x: Any, /, *, axis: int = -1, descending: bool = False, stable: bool = True
    ) -> Any:
        backend = _backend_arg(b, x)
        if axis.__class__ is int and axis == -1:
            return xargsort(x, descending=descending, stable=stable, backend=backend)
        return xargsort(x, axis=axis, descending=descending, stable=stable, backend=backend)

    def svd(x: Any, /, *, full_matrices: bool = True) -> Any:
        return xsvd(x, full_matrices=full_matrices, backend=_backend_arg(b, x))

    def svdvals(x: Any, /) -> Any:
        return xsvdvals(x, backend=_backend_arg(b, x))

    for f, src in ((sort, xsort), (argsort, xargsort), (svd, xsvd), (svdvals, xsvdvals)):
        f.__doc__ = (
            f"xback.{src.__name__} on the namespace's backend, with the Array API signature "
            f"(see :func:`xback.{src.__name__}` for the exact contract)."
        )
        f.__module__ = "xback"
    return {"sort": sort, "argsort": argsort}, {"svd": svd, "svdvals": svdvals}


def _submodule(parent_name: str, sub: Any, replace: dict[str, Any]) -> types.ModuleType:
    """A copy of namespace submodule ``sub`` (``linalg``, ``fft``) with ``replace`` applied."""
    mod = types.ModuleType(f"{parent_name}.{sub.__name__.rsplit('.', 1)[-1]}")
    mod.__dict__.update({k: v for k, v in vars(sub).items() if not k.startswith("_")})
    mod.__dict__.update(replace)
    return mod


def _library_device(b: Backend, dev: str) -> tuple[Any, Any]:
    """(array-api-compat namespace, library device object) for backend ``b`` on ``dev``."""
    import array_api_compat

    probe = b.from_numpy(np.zeros(0, dtype=np.bool_), dev, None)
    return array_api_compat.array_namespace(probe), array_api_compat.device(probe)


def _build(b: Backend, dev: str) -> Namespace:
    lib, libdev = _library_device(b, dev)
    name = b.name
    ns = Namespace(f"xback.namespace[{name}, {dev}]")
    ns.__doc__ = (
        f"Array API namespace {lib.__name__} on device {dev!r}, with xback's exact functions "
        f"and extensions (xback.namespace)."
    )
    ns.__dict__.update(
        {k: v for k, v in vars(lib).items() if not k.startswith("_") or k in _KEPT_DUNDERS}
    )
    ns.backend = name
    ns.device = dev
    ns.__dict__["_library"] = lib

    main, linalg = _exact_functions(b)
    for attr, src in (XBACK_FUNCTIONS | XBACK_EXTENSIONS).items():
        fn = getattr(xback, src, None)
        if fn is not None:
            main[attr] = _bind_backend(fn, b)
    ns.__dict__.update(main)

    # Host-memory backends (NumPy, Dask) have one device: nothing to bind.
    bind = not isinstance(b, HostBackend)
    if bind:
        for attr in CREATION_FUNCTIONS:
            fn = getattr(lib, attr, None)
            if fn is not None:
                bound = (_bind_from_dlpack if attr == "from_dlpack" else _bind_device)(fn, libdev)
                setattr(ns, attr, bound)
        info = lib.__array_namespace_info__
        ns.__dict__["__array_namespace_info__"] = functools.wraps(info)(
            lambda: _Info(info(), libdev)
        )
    lib_linalg = getattr(lib, "linalg", None)
    if lib_linalg is not None:
        ns.__dict__["linalg"] = _submodule(ns.__name__, lib_linalg, linalg)
    lib_fft = getattr(lib, "fft", None)
    if bind and lib_fft is not None:
        ns.__dict__["fft"] = _submodule(
            ns.__name__,
            lib_fft,
            {
                attr: _bind_device(getattr(lib_fft, attr), libdev)
                for attr in FFT_CREATION_FUNCTIONS
                if hasattr(lib_fft, attr)
            },
        )
    return ns


#: backend name -> device -> namespace (string keys only: cheap, and traceable by Dynamo)
_NAMESPACES: dict[str, dict[str, Namespace]] = {}
_LOCK = threading.Lock()


def _namespace_for(b: Backend, dev: str) -> Namespace:
    with _LOCK:
        per_device = _NAMESPACES.setdefault(b.name, {})
        ns = per_device.get(dev)
        if ns is None:
            ns = per_device[dev] = _build(b, dev)
        return ns


def clear_cache() -> None:
    """Forget the namespaces built so far: the next :func:`namespace` call builds a new one
    (taking xback's functions anew, e.g. after a test patched one)."""
    with _LOCK:
        _NAMESPACES.clear()


def namespace(*arrays: Any, backend: str | None = None, device: Any = None) -> Namespace:
    """The Array API namespace for the backend and device that xback chooses for ``arrays``.

    Write an algorithm once with ``xp = xback.namespace(X, y)`` and the functions of the
    `Array API standard <https://data-apis.org/array-api/>`_ (2024.12 or later): it runs on
    the caller's library and device, or on those chosen with ``xback.use(...)``.

    The namespace is array-api-compat's for the chosen library (``array_api_compat.numpy``,
    ``array_api_compat.torch``, ``array_api_strict``, ``jax.numpy``,
    ``array_api_compat.dask.array``), with:

    * **xback's exact functions** in place of the library's: ``sort``, ``argsort``,
      ``linalg.svd`` and ``linalg.svdvals`` (with the Array API signatures; ``linalg.svd``
      returns the named tuple ``(U, S, Vh)``, ``full_matrices=True`` by default), and
      ``searchsorted`` and ``unique_*`` where xback defines them. They compute on the
      namespace's backend: same answer, dtype and error on every backend.
    * **xback's extensions** under their own names: ``xp.lstsq_grad``, ``xp.lstsq_grad_fn``
      and, where xback defines them, ``xp.top_k``, ``xp.quantile``, ``xp.nanquantile``,
      ``xp.median``, ``xp.nanmedian``, ``xp.rankdata`` (not part of the standard: other
      namespaces lack them).
    * **device-bound creation**: ``asarray``, ``zeros``, ``ones``, ``empty``, ``full``,
      ``arange``, ``linspace``, ``eye``, ``from_dlpack``, the ``*_like`` functions and
      ``fft.fftfreq``/``fft.rfftfreq`` put their results on the chosen device when no
      ``device=`` is given; ``__array_namespace_info__().default_device()`` is that device.

    Parameters
    ----------
    *arrays : array_like
        The inputs of the algorithm (NumPy arrays, tensors, array-api-strict, JAX or Dask
        arrays; Python scalars and lists take the chosen backend). None: the context's
        namespace.
    backend : str, optional
        ``"numpy"``, ``"torch"``, ``"array_api_strict"``, ``"jax"``, ``"dask"``.
    device : str or torch.device, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"meta"``...

    Returns
    -------
    module-like namespace
        One cached object per (backend, device); ``xp.backend`` and ``xp.device`` name
        them.

    Raises
    ------
    TypeError
        Inputs of several kinds (NumPy and torch) with no ``backend=`` or ``use(...)``
        choice; an unsupported array type.
    ValueError
        Inputs on different devices with no ``device=`` or ``use(...)`` choice; an unknown
        backend or a device the backend does not have.
    ImportError
        The backend's library is not installed.

    Notes
    -----
    The rule is that of every xback function: backend ``backend=`` > the innermost
    ``xback.use(...)`` > the inputs' kind > ``"numpy"``; device ``device=`` > the device of
    the ``use(...)`` that chose the backend > the inputs' common device > ``"cpu"``. The
    namespace does not move the inputs: bring them with ``xp.asarray(x)`` (free when they
    are already there).

    Examples
    --------
    >>> import numpy as np, xback
    >>> X = np.array([[3.0, 1.0], [1.0, 2.0]])
    >>> xp = xback.namespace(X)
    >>> xp.backend, xp.device
    ('numpy', 'cpu')
    >>> xp.sort(xp.asarray([2.0, xp.nan, 1.0]), descending=True)
    array([ 2.,  1., nan])
    >>> xp.linalg.svd(xp.eye(2)).S
    array([1., 1.])
    """
    b, dev = resolve(backend, device, *arrays)
    try:
        return _NAMESPACES[b.name][dev]
    except KeyError:
        return _namespace_for(b, dev)
