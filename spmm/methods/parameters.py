"""Checks of method parameter values: each takes (name, value) and returns the value as a plain
Python object, or raises :class:`SpmmParameterError` stating the valid range.

NumPy integer and float scalars are accepted wherever Python ones are.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import torch
from torch import Tensor, nn

from spmm.errors import SpmmParameterError

Check = Callable[[str, Any], Any]


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def count(minimum: int = 1, *, optional: bool = False) -> Check:
    """An integer >= ``minimum`` (None also allowed when ``optional``)."""

    def check(name: str, value: Any) -> int | None:
        if value is None and optional:
            return None
        if not _is_integer(value) or value < minimum:
            none = " or None" if optional else ""
            raise SpmmParameterError(f"{name} must be an integer >= {minimum}{none}, got {value!r}")
        return int(value)

    return check


def real(minimum: float | None = None, *, strict: bool = False) -> Check:
    """A finite real number, >= ``minimum`` (> when ``strict``) if given."""
    bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"

    def check(name: str, value: Any) -> float:
        ok = _is_real(value) and math.isfinite(value)
        if ok and minimum is not None:
            ok = value > minimum if strict else value >= minimum
        if not ok:
            raise SpmmParameterError(f"{name} must be a finite number{bound}, got {value!r}")
        return float(value)

    return check


def real_or_tensor(name: str, value: Any) -> float | Tensor:
    """A finite number or a finite floating-point tensor (e.g. a baseline broadcast to the inputs)."""
    if isinstance(value, Tensor):
        if not value.is_floating_point():
            raise SpmmParameterError(f"{name} must be a finite number or floating-point tensor, got dtype {value.dtype}")
        if not torch.isfinite(value).all():
            raise SpmmParameterError(f"{name} must be a finite number or tensor, got a tensor with NaN or Inf values")
        return value
    return real()(name, value)


def optional_tensor(name: str, value: Any) -> Tensor | None:
    """None or a finite floating-point tensor."""
    if value is None:
        return None
    if not isinstance(value, Tensor):
        raise SpmmParameterError(f"{name} must be None or a tensor, got {type(value).__name__}")
    return real_or_tensor(name, value)


def flag(name: str, value: Any) -> bool:
    """True or False."""
    if not isinstance(value, bool):
        raise SpmmParameterError(f"{name} must be True or False, got {value!r}")
    return value


def bounds(name: str, value: Any) -> tuple[float, float] | str | None:
    """:func:`interval`, or ``"sample"``: each sample's own value range [min, max]."""
    return value if value == "sample" else interval(name, value)


def choice(*options: str) -> Check:
    """One of the strings ``options``."""

    def check(name: str, value: Any) -> str:
        if value not in options:
            raise SpmmParameterError(f"{name} must be one of {list(options)}, got {value!r}")
        return value

    return check


def interval(name: str, value: Any) -> tuple[float, float] | None:
    """None or (low, high) with finite low < high."""
    if value is None:
        return None
    pair = tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(pair) != 2 or not all(_is_real(v) and math.isfinite(v) for v in pair) or not pair[0] < pair[1]:
        raise SpmmParameterError(f"{name} must be None or (low, high) with finite low < high, got {value!r}")
    return float(pair[0]), float(pair[1])


def optional_module(name: str, value: Any) -> nn.Module | None:
    """None or an ``nn.Module``."""
    if value is not None and not isinstance(value, nn.Module):
        raise SpmmParameterError(f"{name} must be an nn.Module of the model, got {type(value).__name__}")
    return value


INTERPOLATE_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")
"""The modes ``torch.nn.functional.interpolate`` accepts."""
