"""A vision-language model scored on the words of a fixed text, as a function of the pixels only:
the row model of the ground-truth bench of vision-language models (each row one word, its map on
the image), and the model whose own attention weights give the attention baseline."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spmm.errors import SpmmInputError

from .vlm_layouts import WholeImage


class WordLogits(nn.Module):
    """Pixels (R, 3, H, W) in [−1, 1] -> logits (R, W) of the W words at ``positions`` of the token
    sequence ``input_ids`` (1, L) (teacher forcing: word w is scored at position ``positions[w] − 1``,
    where the model predicts it, on the tokens before it and the image).

    lm: a ``transformers`` vision-language model (its image placeholders in ``input_ids``) whose
    processor makes the whole image one picture; layout: its :class:`.vlm_layouts.WholeImage`
    (pixels -> ``pixel_values``).  Every row shares the text.
    """

    def __init__(self, lm: nn.Module, layout: WholeImage, input_ids: Tensor, positions: Tensor) -> None:
        super().__init__()
        if not isinstance(layout, WholeImage) or layout.image_keys:
            raise SpmmInputError(f"word rows need a model whose processor makes one whole picture, not {type(layout).__name__}")
        self.lm, self.pixels = lm, layout  # the layout is no module: lm is registered once
        self.training = lm.training
        self.input_ids, self.positions = input_ids, positions.to(input_ids.device)
        self.words = input_ids[0, self.positions]

    def outputs(self, x: Tensor) -> Any:
        """The model's output on pixels (R, 3, H, W) and the shared text."""
        ids = self.input_ids.expand(x.shape[0], -1)
        return self.lm(pixel_values=self.pixels.pixel_values(x), input_ids=ids, attention_mask=torch.ones_like(ids))

    def forward(self, x: Tensor) -> Tensor:
        logits = self.outputs(x).logits[:, self.positions - 1]  # (R, W, V)
        return logits.gather(-1, self.words.view(1, -1, 1).expand(x.shape[0], -1, 1)).squeeze(-1)

    @torch.no_grad()
    def image_attention(self, x: Tensor, words: Tensor) -> Tensor:
        """The attention baseline: the decoder's attention weights from the position that predicts word
        ``words[r]`` over the image tokens, averaged over heads and layers, on the image tokens' square
        grid upsampled (bilinear) to the pixels: (R, H, W).  The weights are those the decoder's
        attention modules return (eager attention), read by forward hooks removed afterwards."""
        with decoder_attention(self.lm) as attentions:
            self.outputs(x)
        image = (self.input_ids[0] == self.lm.config.image_token_id).nonzero().squeeze(1)
        side = int(round(len(image) ** 0.5))
        query = self.positions[words.to(self.positions.device)] - 1  # (R,)
        mean = torch.stack([layer.float() for layer in attentions]).mean(0).mean(1)  # (R, L, L)
        grid = mean[torch.arange(x.shape[0], device=x.device), query][:, image].view(-1, 1, side, side)
        return F.interpolate(grid, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False).squeeze(1)


@contextlib.contextmanager
def decoder_attention(lm: nn.Module) -> Iterator[list[Tensor]]:
    """Collect the attention weights (B, heads, L, L) of every attention module of ``lm``'s language
    model (class name ending in ``Attention``), in call order, while the block runs; a one-line error
    when they are not returned (a fused kernel: load the model with ``attention="eager"``)."""
    decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else lm
    weights: list[Tensor] = []

    def keep(module: nn.Module, inputs: Any, output: Any) -> None:
        if not isinstance(output, tuple) or len(output) < 2 or not isinstance(output[1], Tensor):
            raise SpmmInputError(f"{type(module).__name__} returns no attention weights: load the model with "
                                 "attention='eager'")
        weights.append(output[1].detach())

    handles = [m.register_forward_hook(keep) for m in decoder.modules() if type(m).__name__.endswith("Attention")]
    try:
        yield weights
    finally:
        for handle in handles:
            handle.remove()
