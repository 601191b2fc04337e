"""Per-rule temperatures of the Semantic Pullback rules (SPEC §2 defaults)."""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Mapping

from spmm.errors import SpmmParameterError

MIN_TEMPERATURE = 1e-12
"""Smallest positive temperature.  The rules divide by T: from about T < 1e-38 on, 1/T
overflows float32 and bfloat16 and the gradients turn into NaN, while already at 1e-12 a
softened gate is a step for every activation with |x| > 6e-12 (Φ(x/T) rounds to 0 or 1).
The floor keeps a margin of 10^26 on activation magnitudes (max-pool divides window values
by T); for the hard gate pass exactly 0.  float16 max-pool windows overflow whenever
|x|/T > 65504, whatever the floor."""


@dataclasses.dataclass(frozen=True)
class Temperatures:
    """Temperature of each rule family; 0 gives the hard gate (the exact gradient for ReLU).
    Others must lie in [MIN_TEMPERATURE, ∞) (the attention temperature cannot be 0).

    ``silu`` defaults to the vision value 1.6; the text adapter uses 1.0.
    """

    relu: float = 0.6
    leaky_relu: float = 0.6
    hardtanh: float = 0.6
    gelu: float = 1.0
    silu: float = 1.6
    hardswish: float = 1.0
    max_pool: float = 0.3
    attention: float = 1.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            valid = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            if field.name == "attention":
                if not valid or value < MIN_TEMPERATURE:
                    raise SpmmParameterError(
                        "temperature 'attention' must be > 0 (it divides the attention logits): a finite number "
                        f"of at least {MIN_TEMPERATURE:g}; got {value!r}"
                    )
            elif not valid or not (value == 0 or value >= MIN_TEMPERATURE):
                raise SpmmParameterError(
                    f"temperature {field.name!r} must be a finite number >= 0: exactly 0 (the hard gate) or at "
                    f"least {MIN_TEMPERATURE:g}; got {value!r}"
                )
            object.__setattr__(self, field.name, float(value))

    def updated(self, overrides: Mapping[str, float] | None) -> "Temperatures":
        """A copy with ``overrides`` applied; unknown names raise a :class:`SpmmParameterError`
        (a ValueError) listing the valid ones."""
        if not overrides:
            return self
        unknown = sorted(set(overrides) - set(self.names()))
        if unknown:
            raise SpmmParameterError(f"unknown temperature(s) {unknown}; valid names: {list(self.names())}")
        return dataclasses.replace(self, **dict(overrides))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))


def resolve_temperatures(temperatures: "Temperatures | Mapping[str, float] | None") -> Temperatures:
    """Accept a :class:`Temperatures`, a mapping of overrides, or None (defaults)."""
    if isinstance(temperatures, Temperatures):
        return temperatures
    return Temperatures().updated(temperatures)
