"""Vision-language generation models (LLaVA, LLaVA-NeXT, PaliGemma, Qwen2-VL, Qwen2.5-VL, Idefics3,
SmolVLM, BLIP-2 with a decoder language model; :mod:`.vlm_families`): every generated token
explained on the image's pixels and on the prompt and earlier tokens.

>>> m = spmm.load("./llava_dir")                    # save_pretrained folder with its processor
>>> ex = m.explain("cat.jpg", prompt="What is in the picture?", target=spmm.Continuation(max_new_tokens=8))
>>> ex.image_maps                                   # (tokens, H, W) on the pixels, channels summed
>>> ex.matrix                                       # (tokens, prompt + continuation tokens)

The model's own processor makes its input: the image goes through the processor's image processor
and its ``pixel_values`` are mapped back to pixels in [−1, 1] (the colour map of :mod:`.vision`;
the family's layout in :mod:`.vlm_layouts` says how its views, tiles or patches lie on the image),
the prompt (with the image placeholder put where the family's prompts have it, when the prompt has
none) through the processor's text side, which expands the placeholder into the image's tokens.
The explained input of each row is one flat vector, the pixels (P) then the context's token
embeddings (C·D), and :class:`PixelsAndTokens` maps it back to the model's ``pixel_values`` and
``inputs_embeds``, so every method of spmm runs on both at once and the image's placeholder tokens
(which the model overwrites with the image features) and special tokens are held fixed.  The rows
are those of the language models (:class:`~.generation.LanguageModality`: one forward shared by
the rows for ``gradient`` and ``soft_pullback``, batched copies for the other methods), through
:meth:`spmm.Explainable.explain`.  ``m.explain(image, prompt=...)`` with the default target
explains the next token.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from spmm.errors import SpmmInputError
from spmm.explainable import Explainable, Prepared
from spmm.explanation import Explanation, Prediction
from spmm.rows import RowPlan
from spmm.ruleset import get_ruleset
from spmm.rows import SHARED_FORWARD_METHODS
from spmm.targets import Continuation, Contrast, SequenceLogProb
from spmm.modalities.image.generation import ImageGenerationExplanation
from spmm.modalities.text.batch import token_limit

from .generation import Context, LanguageModality, _continuation_ids, split_flat_rows
from .preprocessors import saved_processor
from .tasks import register_hf_task, source_name
from .vlm_families import FAMILIES, family_of

VLM_ARCHITECTURES = tuple(FAMILIES)
MODEL_INPUTS = ("input_ids", "attention_mask", "pixel_values")
"""The processor outputs every family's model is run on; each family adds its image inputs and
token types (:mod:`.vlm_families`)."""


class NextTokenContrast:
    """Score = logit(target) − logit(foil) at ``position`` of logits (B, C, V) -> (B,); a side is a
    token id or ``"top1"`` (the largest logit)."""

    def __init__(self, target: int | str, foil: int | str, position: int) -> None:
        self.target, self.foil, self.position = target, foil, position

    def side(self, logits: Tensor, side: int | str) -> Tensor:
        return logits.max(-1).values if isinstance(side, str) else logits[:, side]

    def __call__(self, logits: Any) -> Tensor:
        logits = logits if isinstance(logits, Tensor) else logits.logits
        at = logits[:, self.position]
        return self.side(at, self.target) - self.side(at, self.foil)

    def take(self, sample_index: Tensor) -> "NextTokenContrast":
        return self

    def __repr__(self) -> str:
        return f"NextTokenContrast({self.target!r}, {self.foil!r})"


def refuse_layer_methods(method: str) -> None:
    """A one-line error for a method that takes a ``layer`` (Grad-CAM: Captum upsamples the layer's
    map onto the explained input's spatial dims), which the flat pixels-and-embeddings input lacks."""
    from spmm.methods.registry import get_method

    if "layer" in get_method(method).defaults:
        raise SpmmInputError(f"{method} upsamples a layer's map onto the input's spatial dims; a vision-language model's "
                             "input is the pixels and the prompt's embeddings in one vector, which has none: use "
                             "gradient, soft_pullback or another method of spmm.list_methods()")


class PixelsAndTokens(nn.Module):
    """A vision-language model on one flat input per row: (B, P + C·D) -> logits (B, C, V).

    The first P values are the pixels in [−1, 1] (shape ``pixel_shape``), made the model's
    ``pixel_values`` by the family's ``layout`` (:mod:`.vlm_layouts`), with the other image inputs
    ``image_inputs`` (``image_sizes``…, batch 1); the rest are the context's token embeddings
    (C, D), where positions not ``free`` (C,) take the embeddings of ``input_ids`` (1, C) in the model's current table (the image
    placeholders, which the model finds by their embedding, and special tokens; current, so that
    methods perturbing the weights, such as FusionGrad, keep the placeholders recognisable);
    ``token_types``: the family's per-token type ids (name -> (1, C)); ``position_ids`` (3, 1, C)
    where the family's positions are not the model's own from ``inputs_embeds`` (Qwen2-VL's M-RoPE).
    """

    def __init__(self, lm: nn.Module, layout: Any, pixel_shape: tuple[int, ...], image_inputs: dict[str, Tensor],
                 attention_mask: Tensor, input_ids: Tensor, free: Tensor, token_types: dict[str, Tensor],
                 position_ids: Tensor | None = None) -> None:
        super().__init__()
        self.lm, self.pixels, self.pixel_shape, self.image_inputs = lm, layout, pixel_shape, image_inputs
        self.attention_mask, self.input_ids, self.token_types = attention_mask, input_ids, token_types
        self.position_ids = position_ids
        self.free = free.view(1, -1, 1)
        self.training = lm.training

    @property
    def pixel_count(self) -> int:
        return math.prod(self.pixel_shape)

    def forward(self, x: Tensor) -> Tensor:
        rows, n = x.shape[0], self.pixel_count
        pixels = x[:, :n].reshape(rows, *self.pixel_shape)
        with torch.no_grad():
            fixed = self.lm.get_input_embeddings()(self.input_ids)
        embeddings = x[:, n:].reshape(rows, *fixed.shape[1:]).to(fixed.dtype)
        free = self.free.to(fixed.dtype)
        mixed = embeddings * free + fixed * (1 - free)
        pixel_values = self.pixels.pixel_values(pixels).to(fixed.dtype)
        extra = {key: value.expand(rows, *value.shape[1:]).contiguous()  # contiguous: Idefics3 views its mask
                 for key, value in {**self.image_inputs, **self.token_types}.items()}
        if self.position_ids is not None:
            extra["position_ids"] = self.position_ids.expand(-1, rows, -1)
        return self.lm(input_ids=None, pixel_values=pixel_values, inputs_embeds=mixed,
                       attention_mask=self.attention_mask.expand(rows, -1), **extra).logits


class VisionLanguageModality(LanguageModality):
    """Images (one at a time) with a prompt (``prompt=`` of :meth:`spmm.Explainable.explain`):
    the hooks of a language model, on the pixels and the prompt's embeddings (module docstring).

    processor: the model's processor (image processor and tokenizer); image_token: its image
    placeholder; lm: the ``transformers`` model.
    """

    name = "vision-language"

    def __init__(self, processor: Any, max_length: int, *, lm: nn.Module) -> None:
        super().__init__(processor.tokenizer, max_length, lm=lm)
        self.processor = processor
        self.image_token = str(getattr(processor.image_token, "content", processor.image_token))  # BLIP-2's is an AddedToken
        self.image_token_id = lm.config.image_token_id
        self.family = family_of(lm)
        self.layout = self.family.layout(processor.image_processor)
        self.model_inputs = MODEL_INPUTS + self.layout.image_keys + tuple(self.family.token_types)

    # -- hooks ------------------------------------------------------------------------------
    def prepare(self, model: Any, inputs: Any, **options: Any) -> Prepared:
        """inputs: one image (path, PIL image, uint8 array) -> the family's pixels (1, *S) in [−1, 1]
        as the processor makes them (:mod:`.vlm_layouts`); ``context["image"]`` keeps the PIL image
        for the processor's text side, ``context["geometry"]`` where the pixels lie on it."""
        from transformers.image_transforms import convert_to_rgb

        from spmm.modalities.image import load_pil

        if inputs is None or isinstance(inputs, str) and not inputs.strip():
            raise SpmmInputError("a vision-language model explains an image with a prompt: give the image "
                                 "(m.explain('cat.jpg', prompt='...'))")
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 1:
                raise SpmmInputError(f"a vision-language model explains one image at a time; got {len(inputs)}")
            inputs = inputs[0]
        if isinstance(inputs, Tensor):
            raise SpmmInputError("give the image as a file, a PIL image or a uint8 array: the model's processor "
                                 "prepares it")
        image = load_pil(inputs)
        image = image if image.mode == "RGB" else convert_to_rgb(image)  # transparency onto white, as transformers does
        try:
            pixels, geometry = self.layout.prepare(image)
        except ValueError as error:
            raise SpmmInputError(f"the model's processor refuses this image: {str(error).splitlines()[0]}") from None
        device = next(self.lm.parameters()).device
        return Prepared(pixels.to(device), self.lm, [str(inputs) if isinstance(inputs, (str, Path)) else "image"],
                        {"image": image, "geometry": geometry})

    def method_params(self, method: str, inputs: Tensor, model: Any) -> dict[str, Any]:
        """No scale defaults: the flat input mixes pixels and embeddings (give noise scales explicitly)."""
        return {}

    def bind_target(self, target: Any, prepared: Prepared) -> Any:
        """``"top1"``: the next token (a one-token continuation); Continuation and SequenceLogProb as
        given; :class:`spmm.Contrast` of two next tokens (strings of one token, ids or ``"top1"``) as ids."""
        if isinstance(target, str) and target.strip().lower() == "top1":
            return Continuation(max_new_tokens=1)
        if isinstance(target, Contrast):
            return self.token_target(target)
        if not isinstance(target, (Continuation, SequenceLogProb)):
            raise SpmmInputError(f"a vision-language model explains spmm.Continuation(...), spmm.SequenceLogProb(text) or "
                                 f"spmm.Contrast(token, token) targets (or 'top1', the next token); got {target!r}")
        return target

    def plan_rows(self, prepared: Prepared, target: Any, method: str, params: dict[str, Any]) -> RowPlan | None:
        """The rows of the continuation (:meth:`LanguageModality.plan_rows`) for ``params["prompt"]``;
        a Contrast is one row: logit(target) − logit(foil) of the token after the prompt.  Methods
        reading a layer's spatial map (Grad-CAM, :func:`refuse_layer_methods`) are refused."""
        refuse_layer_methods(method)
        params = dict(params)
        prompt = params.pop("prompt", None)
        if not isinstance(prompt, str) or not prompt.strip():
            raise SpmmInputError("a vision-language model needs a prompt: m.explain(image, prompt='What is in the picture?')")
        prepared.context["prompt"] = prompt
        if not isinstance(target, Contrast):
            return super().plan_rows(prepared, target, method, params)
        if "rows_per_pass" in params or "strategy" in params:
            raise SpmmInputError("rows_per_pass and strategy apply to Continuation and SequenceLogProb targets only")
        row_prepared = self.row_prepared(prepared, target, params.get("seed"))
        prompt_length = row_prepared.context["generation"].prompt_columns
        row_prepared.context.update(target=target, row_columns=[prompt_length])
        shared = method in SHARED_FORWARD_METHODS and not set(params) - {"seed"}
        return RowPlan(row_prepared, NextTokenContrast(target.target, target.foil, prompt_length - 1), params, rows=1,
                       shared=shared)

    def row_prepared(self, prepared: Prepared, target: Continuation | SequenceLogProb | Contrast,
                     seed: int | None) -> Prepared:
        """The rows' input: pixels (P, the layout's) then the context's embeddings (C·D), one flat (1, N) vector."""
        context, batch = self.image_context(prepared.context["image"], prepared.context["prompt"], target, seed)
        device = next(self.lm.parameters()).device
        embeddings = self.embed_context(context)
        fixed = context.fixed[0].to(device)
        ids, mask = context.input_ids.to(device), context.attention_mask.to(device)
        types = {}
        for key, value in self.family.token_types.items():  # the prompt's, then the continuation's value
            continuation = torch.full((1, ids.shape[1] - batch[key].shape[1]), value, dtype=batch[key].dtype)
            types[key] = torch.cat([batch[key], continuation], dim=1).to(device)
        pixels = prepared.inputs
        image_inputs = {key: batch[key].to(device) for key in self.layout.image_keys}
        positions = (None if self.family.positions is None else
                     self.family.positions(self.lm, ids, {**image_inputs, **types, "attention_mask": mask}))
        model = PixelsAndTokens(self.lm, self.layout, tuple(pixels.shape[1:]), image_inputs, mask, ids, ~fixed, types,
                                positions)
        flat = torch.cat([pixels.flatten(1), embeddings.flatten(1).to(pixels.dtype)], dim=1)
        return Prepared(flat, model, [f"{prepared.sources[0]}: {context.prompt}"],
                        {"generation": context, "pixels": pixels, "embeddings": embeddings,
                         "geometry": prepared.context["geometry"]})

    def explanation(self, base: Explanation, prepared: Prepared) -> Explanation:
        """An :class:`ImageGenerationExplanation`: the generation matrix on the text tokens (image
        placeholders left out) and each row's pixel attribution summed over colour channels."""
        context = prepared.context
        pixels, embeddings = context["pixels"], context["embeddings"]
        pixel_attributions, token_attributions = split_flat_rows(base.attributions, pixels, embeddings)
        text_base = dataclasses.replace(base, attributions=token_attributions, inputs=embeddings)
        text = super().explanation(text_base, Prepared(embeddings, prepared.model, prepared.sources, context))
        ids = context["generation"].input_ids[0].tolist()
        kept = [c for c, i in enumerate(ids) if i != self.image_token_id]
        column = {c: k for k, c in enumerate(kept)}
        column[len(ids)] = len(kept)
        target = context["target"]
        row_tokens = ([f"{self.side_text(target.target)} − {self.side_text(target.foil)}"]
                      if isinstance(target, Contrast) else text.row_tokens)
        return ImageGenerationExplanation(**{
            **{f.name: getattr(text, f.name) for f in dataclasses.fields(text)},
            "attributions": text.attributions[:, :, kept], "inputs": text.inputs[:, kept],
            "context_tokens": [text.context_tokens[c] for c in kept],
            "context_words": [text.context_words[c] for c in kept],
            "row_columns": [column[c] for c in text.row_columns], "row_tokens": row_tokens,
            "prompt_columns": sum(1 for c in kept if c < text.prompt_columns),
            "pixel_maps": self.layout.on_image(pixel_attributions, context["geometry"]).detach().cpu(),
            "image": self.layout.display(pixels, context["geometry"]).detach().cpu(),
            "sources": list(prepared.sources),
        })

    def side_text(self, side: int | str) -> str:
        """A Contrast side as text: its token, or ``"top1"``."""
        return self.tokenizer.decode([side]) if isinstance(side, int) else str(side)

    # -- the context --------------------------------------------------------------------------
    def processor_input(self, image: Image.Image, prompt: str) -> dict[str, Tensor]:
        """The processor's output for ``image`` and ``prompt`` (the image placeholder prepended when
        the prompt has none); a prompt over the token limit is a one-line error."""
        if self.image_token in prompt and "{image}" not in self.family.template:
            raise SpmmInputError(f"{type(self.processor).__name__} puts the image before the prompt itself: remove "
                                 f"{self.image_token!r} from the prompt")
        text = prompt if self.image_token in prompt else self.family.template.format(image=self.image_token, prompt=prompt)
        try:
            batch = self.processor(images=image, text=text, return_tensors="pt", truncation=False)
        except ValueError as error:
            raise SpmmInputError(f"the model's processor refuses this image or prompt: {str(error).splitlines()[0]}") from None
        length = batch["input_ids"].shape[1]
        if length > self.max_length:
            raise SpmmInputError(f"the prompt with its image is {length} tokens; the model takes at most {self.max_length} "
                                 "(shorten the prompt)")
        return batch

    def image_context(self, image: Image.Image, prompt: str, target: Continuation | SequenceLogProb | Contrast,
                      seed: int | None) -> tuple[Context, dict[str, Tensor]]:
        """The prompt's tokens (the processor's) with the continuation (generated greedily on the
        processor's ``pixel_values``, or the given text), and the processor's output."""
        tokenizer = self.tokenizer
        batch = self.processor_input(image, prompt)
        device = next(self.lm.parameters()).device
        prompt_ids = batch["input_ids"][0].tolist()
        text = getattr(target, "text", None)
        if isinstance(target, Contrast):
            new_ids = []
        elif text is not None:
            new_ids = _continuation_ids(tokenizer, text)
        else:
            self.check_length(len(prompt_ids) + target.new_tokens)
            new_ids = self.generate_with_image(batch, target.new_tokens, seed, device)
        self.check_length(len(prompt_ids) + len(new_ids))
        continuation = text if isinstance(text, str) else tokenizer.decode(new_ids, skip_special_tokens=True)
        special = set(tokenizer.all_special_ids) | {self.image_token_id}
        ids = prompt_ids + new_ids
        words, count = [], 0
        for i in ids:
            words.append(None if i in special else count)
            count += i not in special
        p = len(prompt_ids)
        return Context(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long),
                       torch.tensor([[i in special for i in ids]]), torch.tensor(new_ids),
                       torch.arange(p - 1, p - 1 + len(new_ids)), [p + t for t in range(len(new_ids))], words, p,
                       prompt, continuation), batch

    def check_length(self, tokens: int) -> None:
        """A one-line error when prompt, image and continuation exceed the model's token limit."""
        if tokens > self.max_length:
            raise SpmmInputError(f"prompt, image and continuation are {tokens} tokens; the model takes at most "
                                 f"{self.max_length} (shorten the prompt or the continuation)")

    def generate_with_image(self, batch: dict[str, Tensor], new_tokens: int, seed: int | None,
                            device: torch.device) -> list[int]:
        """Greedy continuation (``do_sample=False``) of the processor's input: the new token ids."""
        from spmm.explain import seeded

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        inputs = {k: batch[k].to(device) for k in self.model_inputs if k in batch}
        with seeded(seed), torch.no_grad():
            out = self.lm.generate(**inputs, max_new_tokens=new_tokens, do_sample=False, num_beams=1, pad_token_id=pad)
        return out[0, inputs["input_ids"].shape[1]:].tolist()


@dataclasses.dataclass(repr=False)
class VisionLanguageModel(Explainable):
    """A vision-language generation model: ``m.explain(image, prompt=..., target=spmm.Continuation(...))``
    gives an :class:`ImageGenerationExplanation`; ``lm`` is the ``transformers`` model."""

    lm: Any = None

    @property
    def processor(self) -> Any:
        return self.modality.processor

    def predict(self, inputs: Any, k: int = 5, prompt: str = "", **options: Any) -> list[list[Prediction]]:
        """The ``k`` most probable next tokens after ``prompt`` on the image ``inputs`` (no explanation)."""
        if not prompt.strip():
            raise SpmmInputError("a vision-language model needs a prompt: m.predict(image, prompt='What is in the picture?')")
        prepared = self.prepare(inputs, **options)
        batch = self.modality.processor_input(prepared.context["image"], prompt)
        device = next(self.lm.parameters()).device
        with torch.no_grad():
            logits = self.lm(**{key: batch[key].to(device) for key in self.modality.model_inputs if key in batch}).logits[:, -1]
        values, indices = logits.float().softmax(-1).topk(min(k, logits.shape[-1]), dim=-1)
        decode = self.modality.tokenizer.decode
        return [[Prediction(int(i), decode([int(i)]), float(v)) for v, i in zip(values[0].tolist(), indices[0].tolist())]]

    def audit(self, inputs: Any, prompt: str = "", target: Any = "top1", **options: Any):
        """:func:`spmm.audit` of the rows' model on ``inputs`` (one image) with ``prompt`` and the
        continuation of ``target``, under this model's rule set."""
        from spmm.audit import audit

        prepared = self.prepare(inputs, **options)
        target = self.modality.bind_target(target, prepared)
        plan = self.modality.plan_rows(prepared, target, "soft_pullback", {"prompt": prompt})
        rules = self.rules.for_model(plan.prepared.model)
        return audit(plan.prepared.model, plan.prepared.inputs, temperatures=rules.temperatures,
                     module_rules=rules.module_rules)


@register_hf_task("vision-language-generation", VLM_ARCHITECTURES)
def load_vision_language(model: nn.Module, source: Any, processor: Any = None, rules: Any = "text",
                         max_length: int | None = None) -> VisionLanguageModel:
    """A vision-language generation model: continuations explained on the image and the prompt."""
    if model.config.get_text_config().is_encoder_decoder:
        raise SpmmInputError(f"{type(model).__name__} with an encoder-decoder language model "
                             f"({model.config.get_text_config().model_type}) is not explained yet: spmm explains "
                             "vision-language models whose language model is a decoder (BLIP-2 with OPT, not T5)")
    processor = saved_processor(source, processor, model, ("image_processor", "tokenizer", "image_token"), "vision-language")
    limit = token_limit(processor.tokenizer, model.config.get_text_config(), max_length)
    modality = VisionLanguageModality(processor, limit, lm=model)
    ruleset = get_ruleset(rules) if isinstance(rules, str) else rules
    return VisionLanguageModel(model, modality, ruleset, None, source_name(source, model), lm=model)
