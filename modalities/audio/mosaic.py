"""Audio mosaics (target clip in some time slots, distractors in the others) and Focus on them."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from spmm.errors import SpmmInputError

def audio_mosaic(target: Tensor, distractors: Sequence[Tensor], target_slots: Sequence[int]) -> Tensor:
    """Concatenate clips of equal length into one mosaic: the target clip in ``target_slots``,
    the distractors, in order, in the other slots.  Returns (slots · N,) with
    slots = len(target_slots) + len(distractors)."""
    slots = len(target_slots) + len(distractors)
    if not target_slots or any(not 0 <= s < slots for s in target_slots) or len(set(target_slots)) != len(target_slots):
        raise SpmmInputError(f"target_slots {list(target_slots)} must be distinct slots in 0..{slots - 1}")
    lengths = {target.shape[-1], *(d.shape[-1] for d in distractors)}
    if len(lengths) != 1:
        raise SpmmInputError(f"mosaic clips must have one length, got {sorted(lengths)}")
    others = iter(distractors)
    return torch.cat([target if s in target_slots else next(others) for s in range(slots)], dim=-1)


def frame_slots(frames: int, hop: int, slot_samples: int, slots: int) -> Tensor:
    """(T,) slot of each centred frame (frame t is centred on sample t·hop)."""
    return (torch.arange(frames) * hop // slot_samples).clamp_max(slots - 1)
