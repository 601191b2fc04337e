"""Per-rule temperatures of the Semantic Pullback rules (SPEC §2 defaults)."""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping


@dataclasses.dataclass(frozen=True)
class Temperatures:
    """Temperature of each rule family; 0 gives the hard gate (the exact gradient for ReLU).

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
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"temperature {field.name!r} must be a finite number >= 0, got {value!r}")
        if self.attention == 0:
            raise ValueError("temperature 'attention' must be > 0 (it divides the attention logits)")

    def updated(self, overrides: Mapping[str, float] | None) -> "Temperatures":
        """A copy with ``overrides`` applied; unknown names raise a ValueError listing the valid ones."""
        if not overrides:
            return self
        unknown = sorted(set(overrides) - set(self.names()))
        if unknown:
            raise ValueError(f"unknown temperature(s) {unknown}; valid names: {list(self.names())}")
        return dataclasses.replace(self, **dict(overrides))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))


def resolve_temperatures(temperatures: "Temperatures | Mapping[str, float] | None") -> Temperatures:
    """Accept a :class:`Temperatures`, a mapping of overrides, or None (defaults)."""
    if isinstance(temperatures, Temperatures):
        return temperatures
    return Temperatures().updated(temperatures)
