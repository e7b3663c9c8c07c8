"""The PyTorch backend: CPU, CUDA, MPS and the data-less ``meta`` device.

Imported only when the caller has imported torch or asked for ``backend="torch"``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from math import nan
from typing import Any

import numpy as np
import torch

from xback.backends import (
    FINITE_LIST_MAX,
    Backend,
    _linalg_generic,
    _torch_family,
    _torch_sort,
    finite_values,
)

__all__ = ["BACKEND", "NP_TO_TORCH", "TORCH_TO_NP", "TorchBackend", "numpy_dtype_of"]

# Exact dtype correspondences. bfloat16 and the float8 family have no NumPy dtype of their
# own: ml_dtypes provides them, and data moves by reinterpreting same-width integers. Those
# pairs are learnt on first sight of such a dtype (_learn_ml_dtypes): importing ml_dtypes
# costs more than the rest of xback, and a NumPy array of its dtypes cannot exist before
# its owner imported it (docs/architecture.md).
_PAIRS: list[tuple[Any, Any]] = [
    (np.bool_, torch.bool),
    (np.int8, torch.int8),
    (np.int16, torch.int16),
    (np.int32, torch.int32),
    (np.int64, torch.int64),
    (np.uint8, torch.uint8),
    (np.uint16, torch.uint16),
    (np.uint32, torch.uint32),
    (np.uint64, torch.uint64),
    (np.float16, torch.float16),
    (np.float32, torch.float32),
    (np.float64, torch.float64),
    (np.complex64, torch.complex64),
    (np.complex128, torch.complex128),
]
#: the ml_dtypes dtypes torch has, by name (bfloat16 and the float8 family)
_ML_NAMES = tuple(
    n
    for n in ("bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
    if hasattr(torch, n)
)
_ML_TORCH = frozenset(getattr(torch, n) for n in _ML_NAMES)

NP_TO_TORCH: dict[np.dtype[Any], torch.dtype] = {np.dtype(n): t for n, t in _PAIRS}
TORCH_TO_NP: dict[torch.dtype, np.dtype[Any]] = {t: np.dtype(n) for n, t in _PAIRS}

# dtypes torch cannot hold natively but NumPy can (the ml_dtypes ones): moved as same-width
# integers; filled by _learn_ml_dtypes
_VIA_INT_NP: dict[np.dtype[Any], np.dtype[Any]] = {}
_VIA_INT_TORCH: dict[torch.dtype, torch.dtype] = {}
_ml_learnt = False


def _learn_ml_dtypes() -> bool:
    """Add the ml_dtypes pairs to the tables (importing ml_dtypes, once); False when
    ml_dtypes is missing."""
    global _ml_learnt
    if _ml_learnt:
        return True
    try:
        import ml_dtypes
    except ImportError:  # pragma: no cover - a dependency
        return False
    for name in _ML_NAMES:
        t = getattr(ml_dtypes, name, None)
        if t is None:
            continue
        d, td = np.dtype(t), getattr(torch, name)
        NP_TO_TORCH[d], TORCH_TO_NP[td] = td, d
        i = np.dtype(np.int16 if d.itemsize == 2 else np.uint8)
        _VIA_INT_NP[d], _VIA_INT_TORCH[td] = i, NP_TO_TORCH[i]
    _ml_learnt = True
    return True


def _is_ml(dtype: Any) -> bool:
    """Whether ``dtype`` (a NumPy or torch dtype) is one of the ml_dtypes family."""
    if isinstance(dtype, np.dtype):
        return dtype.type.__module__.split(".")[0] == "ml_dtypes"
    return dtype in _ML_TORCH


def numpy_dtype_of(dtype: Any) -> np.dtype[Any] | None:
    """The NumPy dtype equal to torch dtype ``dtype`` (ml_dtypes' for bfloat16 and float8,
    importing it then), or None."""
    d = TORCH_TO_NP.get(dtype)
    if d is None and dtype in _ML_TORCH and _learn_ml_dtypes():
        d = TORCH_TO_NP.get(dtype)
    return d


_DEVICE_STR: dict[torch.device, str] = {}
_NUMPY_MAX_NDIM = 64  # NPY_MAXDIMS of NumPy 2 (torch tensors may have more)
_torch_from_numpy = torch.from_numpy
_functorch_active = torch._C._are_functorch_transforms_active  # inside vmap/grad/jacrev...
_is_compiling = torch.compiler.is_compiling  # dynamo tracing: the tensors are fake


def _values_alone_ok() -> bool:
    """Whether traced code may compute singular values without U and V: under torch.compile
    with no torch.func transform, or eagerly inside vmap alone (no grad, jvp or
    functionalize level, whose derivatives need U and V)."""
    if _is_compiling():  # first: constant under Dynamo, which does not trace the rest
        return not _functorch_active()
    try:  # the transforms active now (a private listing: any failure keeps torch's path)
        from torch._C._functorch import TransformType
        from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

        levels = retrieve_all_functorch_interpreters()
        return bool(levels) and all(lv.key() == TransformType.Vmap for lv in levels)
    except Exception:
        return False


def _device_str(d: torch.device) -> str:
    try:
        return _DEVICE_STR[d]
    except KeyError:
        s = str(d)
        if d.type != "cpu" and d.index is None and d.type != "meta":
            s = f"{d.type}:0"
        _DEVICE_STR[d] = s
        return s


class TorchBackend(Backend):
    """Backend for :class:`torch.Tensor` (and subclasses such as ``nn.Parameter``)."""

    name = "torch"
    respects_readonly = False

    def owns(self, tp: type) -> bool:
        return issubclass(tp, torch.Tensor)

    def layout_problem(self, x: Any) -> str | None:
        if x.is_nested:
            return (
                f"{{name}} is a nested tensor (layout {x.layout}): xback computes on dense "
                f"(strided) tensors only; pad it with {{name}}.to_padded_tensor(0.0), or "
                f"process the tensors of {{name}}.unbind() one by one"
            )
        if x.layout is not torch.strided:
            return (
                f"{{name}} is a {x.layout} tensor: xback computes on dense (strided) tensors "
                f"only; call {{name}}.to_dense() first"
            )
        if x.is_quantized:
            return (
                f"{{name}} is a quantized tensor ({x.dtype}): xback computes on floating, "
                f"integer, bool and complex tensors; call {{name}}.dequantize() first"
            )
        return None

    def normalize_device(self, device: str) -> str:
        try:
            d = torch.device(device)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise ValueError(
                f"device {device!r} is not a device torch knows: use 'cpu', 'cuda', "
                f"'cuda:N', 'mps' or 'meta'"
            ) from exc
        if d.type == "cpu":
            return "cpu"
        if d.type == "meta":
            return "meta"
        if d.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(
                    f"device {device!r} asked for, but CUDA is not available here "
                    f"(torch {torch.__version__}, built for CUDA: {torch.version.cuda or 'no'})"
                )
            n = torch.cuda.device_count()
            index = torch.cuda.current_device() if d.index is None else d.index
            if index >= n:
                raise ValueError(f"device {device!r} does not exist: {n} CUDA device(s) here")
            return f"cuda:{index}"
        if d.type == "mps":
            if not torch.backends.mps.is_available():
                raise ValueError(f"device {device!r} asked for, but MPS is not available here")
            return "mps:0"
        # Other accelerators (xpu, mtia, a privateuse1 backend...): only when this torch build
        # has the device module and it reports the device available; torch knows many more
        # device types (mkldnn, lazy, xla, ipu, vulkan...) that fail deep inside it on use
        module = getattr(torch, d.type, None)  # a renamed privateuse1 backend's module too
        available = getattr(module, "is_available", None)
        ok = False
        device_count = getattr(module, "device_count", None)
        if callable(available) and callable(device_count):
            try:
                ok = bool(available())
                count = int(device_count()) if ok else 0
            except Exception:  # a half-registered backend: treated as absent
                ok = False
            if ok and d.index is not None and d.index >= count:
                raise ValueError(
                    f"device {device!r} does not exist: {count} {d.type} device(s) here"
                )
        if not ok:
            raise ValueError(
                f"device {device!r} is a device type torch knows, but this torch build "
                f"({torch.__version__}) cannot use it here; use 'cpu', 'meta', 'cuda' or "
                f"'cuda:N' (with CUDA), or 'mps' (on Apple silicon)"
            )
        return _device_str(d)

    def device_of(self, x: Any) -> str:
        return _device_str(x.device)

    def same_device(self, *xs: Any) -> bool:
        for x in xs:  # is_cpu first: cheaper than devices (docs/benchmarks.md#device-checks-torch)
            if not x.is_cpu:
                break
        else:
            return True
        d = xs[0].device
        return all(x.device == d for x in xs[1:])

    def dtype_of(self, x: Any) -> np.dtype[Any]:
        try:
            return TORCH_TO_NP[x.dtype]
        except KeyError:
            d = numpy_dtype_of(x.dtype)
            if d is None:
                raise TypeError(f"torch dtype {x.dtype} has no NumPy equivalent") from None
            return d

    def can_hold(self, dtype: np.dtype[Any]) -> bool:
        if dtype in NP_TO_TORCH:
            return True
        if _is_ml(dtype) and _learn_ml_dtypes():  # ml_dtypes is imported: the dtype exists
            return dtype in NP_TO_TORCH
        return not dtype.isnative and dtype.newbyteorder("=") in NP_TO_TORCH

    def native_dtype(self, dtype: np.dtype[Any]) -> Any:
        try:
            return NP_TO_TORCH[dtype]
        except KeyError:
            if not (_is_ml(dtype) and _learn_ml_dtypes()):
                raise
            return NP_TO_TORCH[dtype]

    def traced(self, x: Any) -> bool:
        # functorch wrappers (vmap's batched tensors have no storage) and Dynamo's fake
        # tensors: values are not there to read
        return _is_compiling() or _functorch_active()

    def routable(self, x: Any) -> bool:
        # plain CPU tensors only: no autograd history to keep, no torch.func wrapper (whose
        # data NumPy cannot see), no torch.compile tracing, no subclass semantics
        return (
            type(x) is torch.Tensor
            and x.is_cpu
            and not x.requires_grad
            and not _is_compiling()  # first: constant under Dynamo, the rest is not traced
            and not _functorch_active()
        )

    def dtype_from(self, dtype: Any) -> np.dtype[Any] | None:
        return numpy_dtype_of(dtype) if isinstance(dtype, torch.dtype) else None

    def cpu_threads(self) -> int | None:
        return int(torch.get_num_threads())

    routed_threads = 1

    def routed(self, fn: Callable[..., Any], *args: Any) -> Any:
        # on one thread: after a parallel region, libgomp's workers spin (GOMP_SPINCOUNT,
        # read once at load) on the cores the caller's own next BLAS calls need, and a
        # NumPy program ran slower with routing on than off (docs/routing.md, "The switching
        # penalty"). torch's setting belongs to the calling thread (OpenMP's per-thread
        # setting; also the default of threads that have not called torch yet, and MKL's):
        # this thread's own is restored after the call
        n = torch.get_num_threads()
        if n == 1:
            return fn(*args)
        torch.set_num_threads(1)
        try:
            return fn(*args)
        finally:
            torch.set_num_threads(n)

    # fork_safe: the default (False). torch's CPU kernels run on an OpenMP pool (GNU libgomp
    # in the official builds) that a forked child cannot use once the parent has: the
    # child's first parallel kernel blocks forever.

    # -- conversion ----------------------------------------------------------------------
    def to_device(self, x: Any, device: str) -> Any:
        try:
            return x.to(device)
        except (NotImplementedError, RuntimeError) as exc:  # nested, quantized to meta...
            problem = self.layout_problem(x)
            if problem is None:
                raise
            raise TypeError(
                f"cannot move to {device}: {problem.format(name='x')}"
            ) from exc

    def to_numpy(self, x: Any, copy: bool | None) -> np.ndarray[Any, Any]:
        if not copy:
            try:
                a: np.ndarray[Any, Any] = x.numpy()  # fast path: zero-copy
                return a
            except (RuntimeError, TypeError, ValueError):
                pass
        problem = self.layout_problem(x)
        if problem is not None:
            raise TypeError(f"cannot convert to NumPy: {problem.format(name='x')}")
        if x.is_meta:
            raise ValueError("meta tensors have no data: they cannot be converted to NumPy")
        if x.dim() > _NUMPY_MAX_NDIM:
            raise ValueError(
                f"cannot convert to NumPy: x has {x.dim()} dimensions, NumPy arrays at most "
                f"{_NUMPY_MAX_NDIM}; reshape x first"
            )
        self.dtype_of(x)  # TypeError for a dtype NumPy lacks; learns ml_dtypes' dtypes
        t = x.detach()  # shares memory; the caller's tensor keeps requires_grad and .grad
        must_copy = t.is_conj() or t.is_neg() or t.device.type != "cpu"
        if must_copy and copy is False:
            why = "it lives on " + str(t.device) if t.device.type != "cpu" else (
                "it has the conjugate/negative bit set (a lazy view that NumPy cannot hold)"
            )
            raise ValueError(f"copy=False but converting this tensor needs a copy: {why}")
        t = t.cpu().resolve_conj().resolve_neg()
        via = _VIA_INT_TORCH.get(t.dtype)
        a = t.numpy() if via is None else t.view(via).numpy().view(TORCH_TO_NP[t.dtype])
        if copy and not must_copy:
            a = a.copy()
        return a

    def from_numpy(self, a: np.ndarray[Any, Any], device: str, copy: bool | None) -> Any:
        if copy is None and device == "cpu" and a.flags.writeable:
            try:
                return _torch_from_numpy(a)  # fast path: zero-copy
            except (TypeError, ValueError):
                pass
        on_cpu = device == "cpu"
        if copy is False and not on_cpu:
            raise ValueError(
                f"copy=False but moving NumPy data to device {device!r} needs a copy"
            )
        if copy and on_cpu:
            a = np.array(a, copy=True)  # C-contiguous, native, writable; shared below
        try:
            if a.flags.writeable:
                t = torch.from_numpy(a)
            else:
                # The caller chose sharing (copy=False) or it is an internal read-only use.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    t = torch.from_numpy(a)
        except (TypeError, ValueError):
            t = self._from_numpy_slow(a, copy)
        return t if on_cpu else t.to(device)

    def _from_numpy_slow(self, a: np.ndarray[Any, Any], copy: bool | None) -> Any:
        if _is_ml(a.dtype):
            _learn_ml_dtypes()
        via = _VIA_INT_NP.get(a.dtype)
        if via is not None:
            return self.from_numpy(a.view(via), "cpu", copy).view(NP_TO_TORCH[a.dtype])
        if a.dtype.kind in "iu" and a.dtype.isnative:
            # e.g. np.ulonglong (np.asarray([2**63])): equal to uint64 but rejected by torch
            canon = np.dtype(f"{a.dtype.kind}{a.dtype.itemsize}")
            if a.dtype.char != canon.char:
                return self.from_numpy(a.view(canon), "cpu", copy)
        needs_copy = not a.dtype.isnative or any(s < 0 for s in a.strides)
        if not needs_copy:  # pragma: no cover - front layer checked the dtype
            raise TypeError(f"torch cannot hold NumPy dtype {a.dtype}")
        if copy is False:
            why = "it has non-native byte order" if not a.dtype.isnative else (
                "it has negative strides"
            )
            raise ValueError(f"copy=False but this array cannot be shared with torch: {why}")
        b = np.array(a, dtype=a.dtype.newbyteorder("="), order="C", copy=True)
        return torch.from_numpy(b)

    def astype(self, x: Any, dtype: Any) -> Any:
        # a NumPy dtype, or a torch dtype from native_dtype (traced code: torch.compile
        # cannot look NumPy dtype objects up)
        return x.to(dtype if isinstance(dtype, torch.dtype) else self.native_dtype(dtype))

    def copy(self, x: Any) -> Any:
        return x.clone()

    # -- sorting (xback._sorting; implemented in xback.backends._torch_sort) --------------
    # plain functions (no self): one call frame less on the hot path
    sort = staticmethod(_torch_sort.sort)
    argsort = staticmethod(_torch_sort.argsort)
    last_axis_sorts = _torch_sort.last_axis_sorts

    # -- linear algebra (xback._linalg) --------------------------------------------------
    has_autograd = True
    # torch raises on NaN and returns NaN factors for inf: checked after (cheaper on the CPU,
    # docs/benchmarks.md#finiteness-checks). Its CPU svdvals of some inf input prints MKL's
    # DLASCL complaint on stdout before xback raises; a check first costs more (same page).
    svd_checked_first = frozenset[str]()

    def svd(self, x: Any, full_matrices: bool, canonical_signs: bool) -> tuple[Any, Any, Any]:
        U, S, Vh = torch.linalg.svd(x, full_matrices=full_matrices)
        # S's shape is read only when needed: attribute reads cost most after LAPACK
        if canonical_signs and (k := S.shape[-1]):
            # the convention of _linalg_generic.canonical_phases with torch's own calls (the
            # namespace spelling costs 2x: docs/benchmarks.md#canonical-signs); out of
            # place: torch's svd backward saves U and Vh
            # (each torch call costs µs at this size: no slice where U, Vh are thin)
            thin_u, thin_v = U.shape[-1] == k, Vh.shape[-2] == k
            Uk = U if thin_u else U[..., :k]
            piv = Uk.gather(-2, Uk.abs().argmax(dim=-2, keepdim=True))  # (..., 1, k)
            if piv.is_complex():
                ph = _linalg_generic.phases_of(self, self.namespace(x), piv)
                Uk = Uk * ph.conj()
            else:
                # +-1 by the sign bit, the rule's copysign(1, piv) in one call: piv, the
                # largest entry of a unit column, is never 0 (non-finite input fails later)
                ph = piv.sign()
                Uk = Uk * ph
            Vk = (Vh if thin_v else Vh[..., :k, :]) * ph.mT
            U = Uk if thin_u else torch.cat([Uk, U[..., k:]], dim=-1)
            Vh = Vk if thin_v else torch.cat([Vk, Vh[..., k:, :]], dim=-2)
        return U, S, Vh

    def svdvals(self, x: Any) -> Any:
        return torch.linalg.svdvals(x)

    def svdvals_traced(self, x: Any) -> Any:
        # Traced, linalg.svdvals decomposes into _linalg_svd with compute_uv=True (fake
        # tensors and vmap's batched tensors count as ones that may need a gradient): U and
        # V are computed and dropped, 2-2.5x the eager time at 128x64. With no gradient to
        # keep (no requires_grad, and no torch.func transform but vmap: jvp's tensors need U
        # and V without requiring grad), LAPACK is asked for the values alone, as eager
        # svdvals does (docs/benchmarks.md#torchcompile).
        if x.requires_grad or not _values_alone_ok():
            return torch.linalg.svdvals(x)
        return torch.ops.aten._linalg_svd(x, False, False)[1]

    def nan_where_nonfinite(
        self, x: Any, fn: Callable[[Any], tuple[Any, ...]]
    ) -> tuple[Any, ...]:
        # the default's rule with torch's own calls: array-api-compat's all() over two axes
        # traces as movedim, movedim, flatten, all, cast (five graph nodes for one)
        ok = torch.isfinite(x).all(dim=(-2, -1))  # (...,): one flag per matrix
        nd = ok.dim()
        outs = fn(torch.where(ok[..., None, None], x, torch.zeros_like(x)))
        return tuple(
            torch.where(ok.reshape(*ok.shape, *(1,) * (o.dim() - nd)), o, torch.full_like(o, nan))
            for o in outs
        )

    def singular_values_finite(self, S: Any) -> bool:
        # one matrix's: as Python numbers with no size or device test (few reads after LAPACK,
        # docs/benchmarks.md#seventh-pass-the-check-of-s-2026-12-06-2035-utc)
        if S.ndim == 1:
            try:
                return finite_values(S.tolist())
            except NotImplementedError:  # a meta tensor: no values
                pass
        return self.all_finite(S)

    def all_finite(self, x: Any) -> bool:
        # cheaper than torch's isfinite(x).all() on the CPU: a short vector (singular values)
        # as Python numbers, a small tensor by NumPy on a view; larger ones keep torch's
        # parallel check (docs/benchmarks.md#finiteness-checks)
        if x.is_cpu:
            n = x.numel()
            if n <= FINITE_LIST_MAX and x.dim() == 1:
                return finite_values(x.tolist())
            if n <= _NUMPY_FINITE_MAX and x.dtype in _NP_FINITE:
                try:
                    return bool(np.isfinite(x.detach().numpy()).all())
                except (RuntimeError, TypeError):  # conj/neg-bit views: torch's own check
                    pass
        elif x.is_meta:
            return True  # no values: nothing to check
        return bool(torch.isfinite(x).all())

    def lstsq_grad(self, A: Any, x: Any, y: Any, method: str) -> Any:
        if (
            method == "auto"
            and A.dim() == 2
            and A.numel() * A.element_size() < _BLOCKED_MIN_BYTES
            and not A.is_complex()
        ):  # the common small case: the two BLAS calls, nothing else to decide
            return (A.mT @ (A @ x - y)).mul_(2)
        if method == "autograd" and not (x.dim() == 1 and A.dim() > 2):
            if _is_compiling() or _functorch_active():
                return _lstsq_grad_func(A, x, y)
            return _lstsq_grad_autograd(A, x, y)
        if method == "auto" and _use_blocked(A, x, y):
            return _lstsq_grad_blocked(A, x, y)
        if x.dim() == 1 and A.dim() > 2:
            return super().lstsq_grad(A, x, y, method)  # the default's vector/batch rule
        # the formula with torch's own operators (array-api-compat's wrappers cost µs)
        return (A.mH @ (A @ x - y)).mul_(2)  # matmul's backward keeps its inputs, not g

    def gram_grad(self, G: Any, c: Any, x: Any) -> Any:
        if x.dim() == 1 and G.dim() > 2:
            return super().gram_grad(G, c, x)  # the default's vector/batch rule
        return (G @ x - c).mul_(2)  # per call of lstsq_grad_fn: torch's own operators

    # -- the sort family (xback._sortfamily; native paths in _torch_family) ---------------
    def namespace(self, x: Any) -> Any:
        # array-api-compat's torch namespace, looked up once (array_namespace per call would
        # cost µs, and torch.compile warns on its cache)
        return _compat_torch if _compat_torch is not None else _load_compat_torch()

    def concrete(self, x: Any) -> bool:
        return not x.is_meta

    top_k = staticmethod(_torch_family.top_k)
    searchsorted = staticmethod(_torch_family.searchsorted)
    unique = staticmethod(_torch_family.unique)
    order_statistics = staticmethod(_torch_family.order_statistics)
    rankdata = staticmethod(_torch_family.rankdata)
    median = staticmethod(_torch_family.median)
    quantile = staticmethod(_torch_family.quantile)


_compat_torch: Any = None


def _load_compat_torch() -> Any:
    """array-api-compat's torch namespace, with torch's own calls where its wrappers cost
    several µs per call on small tensors (``take_along_axis``, ``concat``: the canonical
    signs of :meth:`TorchBackend.svd`), and torch's ``sign`` (the wrapper's masked write of
    NaN fails inside ``vmap``; a NaN pivot only comes from non-finite input, whose results
    the front layer rejects or masks)."""
    global _compat_torch
    import types

    import array_api_compat.torch as compat

    if _is_compiling():  # Dynamo cannot build a module: array-api-compat's own, this once
        return compat
    xp = types.ModuleType("xback.backends.torch.namespace", compat.__doc__)
    xp.__dict__.update(vars(compat))
    xp.take_along_axis = _take_along_axis  # type: ignore[attr-defined]
    xp.concat = _concat  # type: ignore[attr-defined]
    xp.sign = torch.sign  # type: ignore[attr-defined]
    _compat_torch = xp
    return xp


def _take_along_axis(x: Any, indices: Any, /, *, axis: int = -1) -> Any:
    return torch.take_along_dim(x, indices, dim=axis)


def _concat(arrays: Any, /, *, axis: int | None = 0) -> Any:
    if axis is None:
        return torch.cat([a.reshape(-1) for a in arrays])
    return torch.cat(list(arrays), dim=axis)


#: up to this many elements, ``all_finite`` of a CPU tensor runs NumPy's check on a view
#: (torch's ``isfinite(x).all()`` costs two kernel launches; NumPy's is single-threaded, so
#: larger tensors keep torch's parallel one)
_NUMPY_FINITE_MAX = 1 << 16
_NP_FINITE = frozenset(t for t, d in TORCH_TO_NP.items() if d.char in "efdFD")


def _lstsq_grad_autograd(A: Any, x: Any, y: Any) -> Any:
    """Gradient of ``||y - A x||²`` by torch autograd on private leaves.

    Works under ``torch.no_grad()``; the caller's tensors keep their ``requires_grad`` and
    ``.grad`` (the graph is built on detached views). ``x`` is expanded to the broadcast
    batch shape first so that each batch element gets its own gradient.
    """
    batch = np.broadcast_shapes(tuple(A.shape[:-2]), tuple(x.shape[:-2]), tuple(y.shape[:-2]))
    shape = torch.Size((*batch, *x.shape[-2:]))
    with torch.enable_grad():
        xl = x.detach()
        xl = xl.expand(shape).clone() if xl.shape != shape else xl.clone()
        xl.requires_grad_(True)
        r = A.detach() @ xl - y.detach()
        loss = torch.view_as_real(r).square().sum() if r.is_complex() else r.square().sum()
        (g,) = torch.autograd.grad(loss, xl)
    return g


def _lstsq_grad_func(A: Any, x: Any, y: Any) -> Any:
    """:func:`_lstsq_grad_autograd` inside ``torch.func`` transforms and ``torch.compile``
    (where ``torch.autograd.grad`` cannot run): by ``torch.func.grad``, which nests in the
    caller's transforms, so the result is differentiable there (the formula's derivative)."""
    batch = torch.broadcast_shapes(A.shape[:-2], x.shape[:-2], y.shape[:-2])  # type: ignore[no-untyped-call]
    shape = (*batch, *x.shape[-2:])
    xl = x.expand(shape) if tuple(x.shape) != shape else x

    def loss(v: Any) -> Any:
        r = A @ v - y
        return torch.view_as_real(r).square().sum() if r.is_complex() else r.square().sum()

    return torch.func.grad(loss)(xl)


# The single pass over 2 MB row blocks beats the two-pass formula where A does not fit in the
# last-level cache and a row holds >= 4 KB, not on smaller A (benchmarks/bench_linalg.py;
# docs/benchmarks.md#single-pass-blocked-gradient-torch).
_BLOCK_BYTES = 2 * 1024 * 1024
_BLOCKED_MIN_BYTES = 32 * 1024 * 1024
_BLOCKED_MIN_ROW_BYTES = 4096
_BLOCKED_MAX_K = 8


def _use_blocked(A: Any, x: Any, y: Any) -> bool:
    """Whether ``"auto"`` takes the single-pass blocked path (CPU, 2-D, tall, no autograd)."""
    return (
        A.dim() == 2
        and y.dim() == x.dim()
        and A.shape[1] * A.element_size() >= _BLOCKED_MIN_ROW_BYTES
        and A.shape[0] > 4 * A.shape[1]
        and A.shape[0] * A.shape[1] * A.element_size() >= _BLOCKED_MIN_BYTES
        and (x.dim() == 1 or x.shape[1] <= _BLOCKED_MAX_K)
        and A.device.type == "cpu"
        and not (
            torch.is_grad_enabled() and (A.requires_grad or x.requires_grad or y.requires_grad)
        )
    )


def _lstsq_grad_blocked(A: Any, x: Any, y: Any) -> Any:
    """Single pass over the rows of ``A`` (see the numpy backend); CPU only."""
    m, n = A.shape
    rows = max(8, _BLOCK_BYTES // max(1, n * A.element_size()))
    g = torch.zeros((n, *x.shape[1:]), dtype=A.dtype, device=A.device)
    if x.dim() == 1:
        for s in range(0, m, rows):
            Ab = A[s : s + rows]
            g.addmv_(Ab.mH, torch.addmv(y[s : s + rows], Ab, x, beta=-1))
    else:
        for s in range(0, m, rows):
            Ab = A[s : s + rows]
            g.addmm_(Ab.mH, torch.addmm(y[s : s + rows], Ab, x, beta=-1))
    return g.mul_(2)


BACKEND = TorchBackend()
