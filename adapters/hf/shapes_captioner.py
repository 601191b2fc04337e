"""``shapes-captioner``: a small vision-language model trained here on the captioned shapes scenes
(:mod:`spmm.modalities.image.shapes_captions`), shipped in ``spmm/adapters/data/shapes-captioner``
and loaded by name through the vision-language path of :mod:`.vlm` (per-token image maps,
``ex.image_maps``, the HTML token strip).

It is a ``transformers`` ``LlavaForConditionalGeneration`` saved with ``save_pretrained`` and its
``LlavaProcessor`` (built offline): a CLIP vision tower on 64 × 64 images in 8 × 8 patches (64
image tokens, width 64, 2 layers, LayerNorm, GELU), a two-layer GELU projector, and a GPT-2 decoder
(2 layers, 4 heads, width 64, LayerNorm, GELU, causal softmax attention over the image tokens and
the earlier words) over a word-level vocabulary of the captions
(:data:`~spmm.modalities.image.shapes_captions.VOCABULARY`).  The prompt is :data:`PROMPT`; the
model answers with the caption and ``[EOS]``.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path
from typing import Any

from spmm.errors import SpmmInputError
from spmm.load import register_model

CAPTIONER = "shapes-captioner"
SIDE = 64
PATCH = 8
WIDTH = 64
IMAGE_TOKEN = "<image>"
PAD, EOS, UNKNOWN = "[PAD]", "[EOS]", "[UNK]"
PROMPT = "describe"
"""The one prompt word of the captioner (``m.explain(image, prompt=PROMPT, ...)``)."""
IMAGE_TOKENS = (SIDE // PATCH) ** 2


def captioner_folder() -> Path:
    """The shipped captioner's ``save_pretrained`` folder (weights, config, processor, training.json)."""
    return Path(str(resources.files("spmm.adapters") / "data" / CAPTIONER))


def word_tokenizer() -> Any:
    """A fast word-level tokenizer of the caption vocabulary, [PAD], [EOS], [UNK], the prompt and
    ``<image>`` (split on whitespace and punctuation; nothing added around a text)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from spmm.modalities.image.shapes_captions import VOCABULARY

    words = [PAD, EOS, UNKNOWN, IMAGE_TOKEN, PROMPT, *VOCABULARY]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token=UNKNOWN))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PAD, eos_token=EOS, unk_token=UNKNOWN,
                                        model_max_length=IMAGE_TOKENS + 32)
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    return tokenizer


def build_captioner(seed: int = 0) -> tuple[Any, Any]:
    """An untrained captioner and its processor: (LlavaForConditionalGeneration, LlavaProcessor)."""
    import torch
    import transformers as t

    tokenizer = word_tokenizer()
    vision = t.CLIPVisionConfig(image_size=SIDE, patch_size=PATCH, hidden_size=WIDTH, intermediate_size=2 * WIDTH,
                                num_hidden_layers=2, num_attention_heads=4, hidden_act="gelu", projection_dim=WIDTH)
    text = t.GPT2Config(vocab_size=len(tokenizer), n_embd=WIDTH, n_layer=2, n_head=4, n_inner=2 * WIDTH,
                        n_positions=IMAGE_TOKENS + 32, activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, tie_word_embeddings=False, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    config = t.LlavaConfig(vision_config=vision, text_config=text, image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                           vision_feature_layer=-1, vision_feature_select_strategy="default", projector_hidden_act="gelu",
                           image_seq_length=IMAGE_TOKENS, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = t.LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    image_processor = t.CLIPImageProcessor(size={"shortest_edge": SIDE}, crop_size={"height": SIDE, "width": SIDE},
                                           image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = t.LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH,
                                 vision_feature_select_strategy="default", image_token=IMAGE_TOKEN,
                                 num_additional_image_tokens=1)
    return model, processor


def captioner_modality(modality: Any) -> Any:
    """The captioner's :class:`~.captioner_bench.CaptionerModality` made from its loaded vision-language modality."""
    from .captioner_bench import CaptionerModality

    return CaptionerModality(modality.processor, modality.max_length, lm=modality.lm, prompt=PROMPT, side=SIDE)


def captioner_card() -> dict[str, Any]:
    """The training record shipped with the weights (accuracy on held-out scenes, command, versions)."""
    return json.loads((captioner_folder() / "training.json").read_text())


@register_model(CAPTIONER, "vision-language", "small LLaVA-architecture captioner (CLIP tower, GPT-2 decoder) trained "
                "here on captioned synthetic shapes (examples/train_shapes_captioner.py); ground truth per caption word")
def load_shapes_captioner(weights: str | Path | None = None, random_init: bool = False, **options: Any) -> Any:
    """The shipped captioner (or the ``save_pretrained`` folder ``weights``), eager attention (its
    attention weights are the attention baseline of the ground-truth bench); ``random_init``: the same
    architecture untrained, drawn from torch's current random state (a randomisation check)."""
    from .resolver import load_pretrained, wrap_pretrained

    if random_init:
        import torch

        model, processor = build_captioner(int(torch.randint(2**31 - 1, ())))
        model.set_attn_implementation("eager")
        loaded = wrap_pretrained(model.eval().requires_grad_(False), processor=processor, **options)
    else:
        folder = captioner_folder() if weights is None else Path(weights)
        if not (folder / "config.json").is_file():
            raise SpmmInputError(f"the shapes captioner is not in {folder}; train it with "
                                 "examples/train_shapes_captioner.py")
        options.setdefault("attention", "eager")
        loaded = load_pretrained(str(folder), **options)
    return dataclasses.replace(loaded, name=CAPTIONER, modality=captioner_modality(loaded.modality))
