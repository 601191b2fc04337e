"""What differs between the vision-language families :func:`spmm.load` explains, as one table:
the pixel layout (:mod:`.vlm_layouts`), the per-token type ids the model takes (and their value on
the continuation), the prompt around the image placeholder, and the position ids a forward on
``inputs_embeds`` needs where the model would otherwise derive them from ``input_ids``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from .vlm_layouts import PatchGrid, SplitImage, TiledImage, WholeImage


def mrope_positions(lm: nn.Module, input_ids: Tensor, inputs: dict[str, Tensor]) -> Tensor:
    """Qwen2-VL's multimodal rotary positions (3, 1, C) of the context ``input_ids`` (1, C): the
    model's own ``get_rope_index`` (a forward on ``inputs_embeds`` alone cannot see the image's grid)."""
    positions, _ = lm.model.get_rope_index(input_ids, mm_token_type_ids=inputs["mm_token_type_ids"],
                                           image_grid_thw=inputs["image_grid_thw"],
                                           attention_mask=inputs["attention_mask"])
    return positions


@dataclasses.dataclass(frozen=True)
class Family:
    """layout: the pixel layout class; token_types: per-token type ids the model takes -> their
    value on the continuation; template: the prompt with the image placeholder put before it (when
    the user's prompt has none); positions: (lm, context ids (1, C), inputs) -> ``position_ids``,
    or None where the model's own from ``inputs_embeds`` are right."""

    layout: type
    token_types: dict[str, int] = dataclasses.field(default_factory=dict)
    template: str = "{image}\n{prompt}"
    positions: Callable[[nn.Module, Tensor, dict[str, Tensor]], Tensor] | None = None


QWEN_VL = Family(PatchGrid, {"mm_token_type_ids": 0}, "<|vision_start|>{image}<|vision_end|>{prompt}", mrope_positions)

FAMILIES: dict[str, Family] = {
    "LlavaForConditionalGeneration": Family(WholeImage),
    "PaliGemmaForConditionalGeneration": Family(WholeImage, {"token_type_ids": 1}, "{image}{prompt}"),
    "LlavaNextForConditionalGeneration": Family(TiledImage),
    "Qwen2VLForConditionalGeneration": QWEN_VL,
    "Qwen2_5_VLForConditionalGeneration": QWEN_VL,
    "Idefics3ForConditionalGeneration": Family(SplitImage),
    "SmolVLMForConditionalGeneration": Family(SplitImage),
    "Blip2ForConditionalGeneration": Family(WholeImage, template="{prompt}"),
}
"""Architecture -> its family.  PaliGemma's ``token_type_ids`` are 0 on the prompt (attended both
ways) and 1 on the continuation (causal), as its ``generate`` extends them; its processor puts BOS
after the image itself.  Qwen2-VL's ``mm_token_type_ids`` mark the image's tokens (1) for its
rotary positions, and its prompts wrap the image in ``<|vision_start|>`` … ``<|vision_end|>``.
BLIP-2's processor puts the image's query tokens before the prompt itself (the prompt names no
image placeholder)."""


def family_of(lm: Any) -> Family:
    """The family of ``lm`` (an architecture of :data:`FAMILIES`)."""
    return FAMILIES[type(lm).__name__]
