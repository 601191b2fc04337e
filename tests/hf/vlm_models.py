"""Tiny vision-language generation models for the VLM tests, each random, saved with its processor
built offline (the family's image processor and the MiniLM fast tokenizer with the family's image
placeholders added): LLaVA (CLIP + Llama), PaliGemma (SigLIP + Gemma), LLaVA-NeXT, Qwen2-VL,
Qwen2.5-VL, Idefics3, SmolVLM and BLIP-2 (ViT + Q-Former + OPT)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

SIDE = 32
PATCH = 8
IMAGE_TOKEN = "<image>"


def minilm_tokenizer_with_image_token():
    """The packaged MiniLM fast tokenizer with ``<image>`` added as a special token: (tokenizer, image token id)."""
    from spmm.adapters.text.models import load_minilm

    tokenizer = load_minilm()[0]
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    return tokenizer, tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)


def save_tiny_llava(folder: Path, seed: int = 0) -> Path:
    """A random tiny LLaVA with its processor, saved with ``save_pretrained`` in ``folder``."""
    import transformers as t

    tokenizer, image_id = minilm_tokenizer_with_image_token()
    vision = t.CLIPVisionConfig(image_size=SIDE, patch_size=PATCH, hidden_size=32, intermediate_size=37,
                                num_hidden_layers=2, num_attention_heads=2, projection_dim=32)
    text = t.LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
                         eos_token_id=tokenizer.sep_token_id)
    config = t.LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_id,
                           vision_feature_layer=-1, vision_feature_select_strategy="full",
                           image_seq_length=(SIDE // PATCH) ** 2)
    torch.manual_seed(seed)
    model = t.LlavaForConditionalGeneration(config).eval()
    image_processor = t.CLIPImageProcessor(size={"shortest_edge": SIDE}, crop_size={"height": SIDE, "width": SIDE})
    processor = t.LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH,
                                 vision_feature_select_strategy="full", image_token=IMAGE_TOKEN,
                                 num_additional_image_tokens=1)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def save_tiny_paligemma(folder: Path, seed: int = 0) -> Path:
    """A random tiny PaliGemma (SigLIP vision tower, Gemma text model) with its processor, saved
    with ``save_pretrained`` in ``folder`` (the MiniLM tokenizer gets [CLS]/[SEP] as BOS/EOS, which
    the PaliGemma processor places around the prompt)."""
    import transformers as t

    tokenizer, image_id = minilm_tokenizer_with_image_token()
    tokenizer.bos_token, tokenizer.eos_token = tokenizer.cls_token, tokenizer.sep_token
    vision = t.SiglipVisionConfig(image_size=SIDE, patch_size=PATCH, hidden_size=32, intermediate_size=37,
                                  num_hidden_layers=2, num_attention_heads=2)
    text = t.GemmaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=1, head_dim=8, max_position_embeddings=128,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
                         eos_token_id=tokenizer.sep_token_id)
    config = t.PaliGemmaConfig(vision_config=vision, text_config=text, image_token_index=image_id, projection_dim=32)
    torch.manual_seed(seed)
    model = t.PaliGemmaForConditionalGeneration(config).eval()
    image_processor = t.SiglipImageProcessor(size={"height": SIDE, "width": SIDE})
    image_processor.image_seq_length = (SIDE // PATCH) ** 2
    processor = t.PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


GRID_PINPOINTS = [[32, 64], [64, 32], [64, 64]]
"""LLaVA-NeXT's tile grids (1×2, 2×1, 2×2 tiles of 32 pixels): the test image (40 × 52) takes 2×2."""


def save_tiny_llava_next(folder: Path, seed: int = 0) -> Path:
    """A random tiny LLaVA-NeXT ("anyres": the whole image and its tiles) with its processor, saved
    with ``save_pretrained`` in ``folder``."""
    import transformers as t

    tokenizer, image_id = minilm_tokenizer_with_image_token()
    vision = t.CLIPVisionConfig(image_size=SIDE, patch_size=PATCH, hidden_size=32, intermediate_size=37,
                                num_hidden_layers=2, num_attention_heads=2, projection_dim=32)
    text = t.LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=160,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
                         eos_token_id=tokenizer.sep_token_id)
    config = t.LlavaNextConfig(vision_config=vision, text_config=text, image_token_index=image_id,
                               vision_feature_layer=-1, vision_feature_select_strategy="default",
                               image_grid_pinpoints=GRID_PINPOINTS)
    torch.manual_seed(seed)
    model = t.LlavaNextForConditionalGeneration(config).eval()
    image_processor = t.LlavaNextImageProcessor(size={"shortest_edge": SIDE}, crop_size={"height": SIDE, "width": SIDE},
                                                image_grid_pinpoints=GRID_PINPOINTS)
    processor = t.LlavaNextProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH,
                                     vision_feature_select_strategy="default", image_token=IMAGE_TOKEN,
                                     num_additional_image_tokens=1)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


QWEN_TOKENS = ["<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>"]
"""Qwen2-VL's image and video placeholders and the markers around the image, added to the tokenizer."""


def save_tiny_qwen2_vl(folder: Path, seed: int = 0, version: str = "2") -> Path:
    """A random tiny Qwen2-VL (``version`` "2.5": Qwen2.5-VL, its vision tower with windows of 2×2
    merged patches and full attention in its last block) (patches of 8 merged 2×2, M-RoPE sections
    2+1+1 of a head of 8) with its processor, saved with ``save_pretrained`` in ``folder``; images
    are resized to at most 48×48 pixels (the test image to 32×48: 6 image tokens)."""
    import transformers as t
    from spmm.adapters.text.models import load_minilm

    tokenizer = load_minilm()[0]
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_TOKENS})
    ids = dict(zip(["start", "image", "end", "video"], tokenizer.convert_tokens_to_ids(QWEN_TOKENS)))
    patches = {"depth": 2, "hidden_size": 32, "num_heads": 2, "patch_size": PATCH, "spatial_merge_size": 2,
               "temporal_patch_size": 2}
    vision = {**patches, "embed_dim": 32, "mlp_ratio": 2}
    if version == "2.5":
        vision = {**patches, "intermediate_size": 64, "out_hidden_size": 32, "window_size": 4 * PATCH,
                  "fullatt_block_indexes": [1]}
    config_class, model_class, processor_class = (
        (t.Qwen2_5_VLConfig, t.Qwen2_5_VLForConditionalGeneration, t.Qwen2_5_VLProcessor) if version == "2.5"
        else (t.Qwen2VLConfig, t.Qwen2VLForConditionalGeneration, t.Qwen2VLProcessor))
    text = {"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 160,
            "rope_parameters": {"rope_type": "default", "mrope_section": [2, 1, 1], "rope_theta": 10000.0},
            "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.cls_token_id,
            "eos_token_id": tokenizer.sep_token_id}
    config = config_class(vision_config=vision, text_config=text, image_token_id=ids["image"],
                             video_token_id=ids["video"], vision_start_token_id=ids["start"],
                             vision_end_token_id=ids["end"])
    torch.manual_seed(seed)
    model = model_class(config).eval()
    sizes = {"min_pixels": 16 * 16, "max_pixels": 48 * 48, "patch_size": PATCH, "merge_size": 2, "temporal_patch_size": 2}
    processor = processor_class(image_processor=t.Qwen2VLImageProcessor(**sizes), tokenizer=tokenizer,
                                   video_processor=t.Qwen2VLVideoProcessor(**sizes))
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


IDEFICS_TOKENS = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
"""Idefics3's markers around each tile, its image placeholder, end of turn and whole-image marker."""


def save_tiny_idefics3(folder: Path, seed: int = 0, smolvlm: bool = False, split: bool = True) -> Path:
    """A random tiny Idefics3 (``smolvlm``: SmolVLM) with its processor, saved with ``save_pretrained``
    in ``folder``: images resized to a longest edge of 64 and split into tiles of 32 plus the whole
    image in one tile (the test image: 2×2 tiles and the whole; ``split`` False: the whole image
    only, in one tile), 4 image tokens per view (patches of 8, pixel shuffle by 2)."""
    import transformers as t
    from spmm.adapters.text.models import load_minilm

    tokenizer = load_minilm()[0]
    tokenizer.add_special_tokens({"additional_special_tokens": IDEFICS_TOKENS})
    prefix = "SmolVLM" if smolvlm else "Idefics3"
    vision = getattr(t, f"{prefix}VisionConfig")(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                                   num_attention_heads=2, image_size=SIDE, patch_size=PATCH)
    text = t.LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=160,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
                         eos_token_id=tokenizer.sep_token_id)
    config = getattr(t, f"{prefix}Config")(vision_config=vision, text_config=text, scale_factor=2,
                                           image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
    torch.manual_seed(seed)
    model = getattr(t, f"{prefix}ForConditionalGeneration")(config).eval()
    sizes = {"size": {"longest_edge": 2 * SIDE}, "max_image_size": {"longest_edge": SIDE}}
    image_processor = getattr(t, f"{prefix}ImageProcessor")(do_image_splitting=split, **sizes)
    videos = {"video_processor": t.SmolVLMVideoProcessor(**sizes)} if smolvlm else {}
    processor = getattr(t, f"{prefix}Processor")(image_processor=image_processor, tokenizer=tokenizer,
                                                 image_seq_len=(SIDE // PATCH) ** 2 // 4, **videos)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def save_tiny_blip2(folder: Path, seed: int = 0) -> Path:
    """A random tiny BLIP-2 (ViT, Q-Former with 4 query tokens, OPT decoder) with its processor, saved
    with ``save_pretrained`` in ``folder`` (the processor adds ``<image>`` to the tokenizer and puts
    the 4 query placeholders before the prompt)."""
    import transformers as t
    from spmm.adapters.text.models import load_minilm

    tokenizer = load_minilm()[0]
    queries = 4
    processor = t.Blip2Processor(image_processor=t.BlipImageProcessor(size={"height": SIDE, "width": SIDE}),
                                 tokenizer=tokenizer, num_query_tokens=queries)
    vision = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": SIDE, "patch_size": PATCH}
    qformer = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37,
               "encoder_hidden_size": 32, "vocab_size": len(tokenizer)}
    text = t.OPTConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4,
                       max_position_embeddings=160, word_embed_proj_dim=32, pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    config = t.Blip2Config(vision_config=vision, qformer_config=qformer, text_config=text, num_query_tokens=queries,
                           image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
    torch.manual_seed(seed)
    model = t.Blip2ForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


TINY_VLMS = {"llava": save_tiny_llava, "paligemma": save_tiny_paligemma, "llava_next": save_tiny_llava_next,
             "qwen2_vl": save_tiny_qwen2_vl, "qwen2_5_vl": partial(save_tiny_qwen2_vl, version="2.5"),
             "idefics3": save_tiny_idefics3, "smolvlm": partial(save_tiny_idefics3, smolvlm=True),
             "idefics3_unsplit": partial(save_tiny_idefics3, split=False), "blip2": save_tiny_blip2}
REQUIRES = {"smolvlm": "num2words"}
"""Name -> the package its processor needs (SmolVLM's spells out numbers for its video prompts)."""
"""Name -> builder of each tiny vision-language model."""
