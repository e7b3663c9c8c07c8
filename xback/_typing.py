"""Static types shared by the public functions' signatures (read by type checkers only).

Every public function that returns "an array of the input's kind, or of the kind that
``backend=`` names" is typed by four or five one-line overloads built from these names:

* ``NativeArray``: a NumPy array or a ``torch.Tensor``, returned as the same kind;
* ``SortOptions``, ``SvdOptions``, ``DeviceOption``, ``LstsqOptions``, ``AsarrayOptions``,
  ``FromNumpyOptions``: the keyword arguments other than ``backend=``, written once
  (``**kw: Unpack[...]``) instead of in every overload.

At run time this module defines nothing that a call uses (the annotations are strings).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import numpy.typing as npt
    import torch
    from typing_extensions import TypedDict

    class SortOptions(TypedDict, total=False):
        """Keyword arguments of :func:`xback.sort` and :func:`xback.argsort` but ``backend``."""

        axis: int | None
        descending: bool
        stable: bool
        device: Any
        dim: int | None

    class SvdOptions(TypedDict, total=False):
        """Keyword arguments of :func:`xback.svd` but ``backend``."""

        full_matrices: bool
        canonical_signs: bool
        device: Any

    class DeviceOption(TypedDict, total=False):
        """The ``device`` keyword (:func:`xback.svdvals`)."""

        device: Any

    class LstsqOptions(TypedDict, total=False):
        """Keyword arguments of :func:`xback.lstsq_grad` but ``backend``."""

        method: str
        device: Any

    class FromNumpyOptions(TypedDict, total=False):
        """Keyword arguments of :func:`xback.from_numpy` but ``backend`` and ``chunks``."""

        device: Any
        copy: bool | None

    class AsarrayOptions(TypedDict, total=False):
        """Keyword arguments of :func:`xback.asarray` but ``backend``."""

        dtype: Any
        device: Any
        copy: bool | None


#: a NumPy array or a torch tensor: a function typed ``(x: NativeArray) -> NativeArray``
#: returns the kind it was given (a constrained type variable, so ``np.ndarray`` in gives
#: ``npt.NDArray[Any]`` out)
NativeArray = TypeVar("NativeArray", "npt.NDArray[Any]", "torch.Tensor")

__all__ = ["NativeArray"]
