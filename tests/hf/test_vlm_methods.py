"""Every method of ``spmm.list_methods()`` on the tiny LLaVA and PaliGemma: each runs (finite maps
of the right shape, the model's weights unchanged after) or is refused up front with a one-line
error saying why; integrated gradients equal an independent Gauss–Legendre path integral of
autograd gradients on the HF model itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import spmm
from spmm.errors import SpmmInputError
from spmm.methods.registry import get_method
from tests.hf.test_vlm import (  # noqa: F401
    PROMPT,
    image,
    processor_input,
    vlm_folders,
    with_continuation,
)

transformers = pytest.importorskip("transformers")

NEW_TOKENS = 2
FAST = {"steps": 4, "samples": 4, "baseline_draws": 2, "model_samples": 2, "input_samples": 2}
"""Fewer samples and steps than the defaults, where a method takes them (the shape is what is checked)."""


@pytest.fixture(scope="module", params=["llava", "paligemma"])
def vlm(request, vlm_folders):  # noqa: F811
    """(spmm model, the HF model and processor loaded independently from the folder): the families
    whose processor makes the whole image one ``pixel_values`` picture."""
    folder = vlm_folders(request.param)
    model = transformers.AutoModelForImageTextToText.from_pretrained(folder).eval()
    return spmm.load(str(folder)), model, transformers.AutoProcessor.from_pretrained(folder)


def fast_params(method: str) -> dict:
    defaults = get_method(method).defaults
    return {name: value for name, value in FAST.items() if name in defaults}


@pytest.mark.parametrize("method", spmm.list_methods())
def test_every_method_runs_or_is_refused_in_one_line(vlm, image, method):  # noqa: F811
    m, _, _ = vlm

    def explain():
        return m.explain(image, prompt=PROMPT, target=spmm.Continuation(max_new_tokens=NEW_TOKENS), method=method,
                         seed=0, **fast_params(method))

    if "layer" in get_method(method).defaults:  # Grad-CAM: a layer's map upsampled onto the input's spatial dims
        with pytest.raises(SpmmInputError, match="upsamples a layer's map onto the input's spatial dims") as error:
            explain()
        assert "\n" not in str(error.value) and method in str(error.value)
        return
    weights = {name: value.clone() for name, value in m.lm.state_dict().items()}
    ex = explain()
    assert all(torch.equal(value, weights[name]) for name, value in m.lm.state_dict().items())  # FusionGrad restores
    assert ex.image_maps.shape == (NEW_TOKENS, 32, 32) and torch.isfinite(ex.image_maps).all()
    assert ex.image_maps.abs().amax(dim=(1, 2)).gt(0).all()  # every token's map says something
    assert ex.matrix.shape == (NEW_TOKENS, len(ex.context_tokens))
    defined = ~torch.isnan(ex.matrix)
    assert defined.any(dim=1).all() and torch.isfinite(ex.matrix[defined]).all()


def test_integrated_gradients_equal_a_path_integral_of_hf_gradients(vlm, image):  # noqa: F811
    """IG from the zero baseline (mid-grey pixels, zero embeddings on the free text tokens; image
    placeholders and special tokens held): x ⊙ Σ_k w_k ∇f(α_k x) with the Gauss–Legendre nodes
    α_k and weights w_k on [0, 1] (Captum's default rule), computed here with autograd on the HF
    model's ``pixel_values`` (chain factor 1/(2·std_c)) and ``inputs_embeds``."""
    m, model, processor = vlm
    steps = 6
    ex = m.explain(image, prompt=PROMPT, target=spmm.Continuation(max_new_tokens=NEW_TOKENS),
                   method="integrated_gradients", steps=steps)
    inputs = processor_input(processor, image)
    prompt_length = inputs["input_ids"].shape[1]
    with torch.no_grad():  # the greedy continuation, as the HF model generates it
        new_ids = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False)[0, prompt_length:].tolist()
    assert ex.row_tokens == [processor.tokenizer.decode([i]) for i in new_ids]
    ids = torch.cat([inputs["input_ids"], torch.tensor([new_ids])], dim=1)
    image_token = model.config.image_token_id
    held = torch.tensor([[i in set(processor.tokenizer.all_special_ids) | {image_token} for i in ids[0].tolist()]])
    mean = torch.tensor(processor.image_processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_processor.image_std).view(1, 3, 1, 1)
    pixels = (inputs["pixel_values"] * std + mean) * 2 - 1  # the unit-range pixels the processor saw
    with torch.no_grad():
        embeddings = model.get_input_embeddings()(ids)
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alphas, weights = (nodes + 1) / 2, weights / 2
    text_columns = (ids[0] != image_token).nonzero().flatten()
    for t, token in enumerate(new_ids):
        pixel_sum, embedding_sum = torch.zeros_like(pixels), torch.zeros_like(embeddings)
        for alpha, weight in zip(alphas.tolist(), weights.tolist()):
            x = (alpha * pixels).requires_grad_(True)
            e = (alpha * embeddings).requires_grad_(True)
            mixed = torch.where(held.unsqueeze(-1), embeddings, e)
            logits = model(inputs_embeds=mixed, pixel_values=((x + 1) / 2 - mean) / std,
                           **with_continuation(inputs, ids)).logits
            grad_x, grad_e = torch.autograd.grad(logits[0, prompt_length - 1 + t, token], [x, e])
            pixel_sum += weight * grad_x
            embedding_sum += weight * grad_e
        expected_map = (pixels * pixel_sum).sum(1)[0]
        assert (ex.image_maps[t] - expected_map).abs().max() <= 1e-3 * expected_map.abs().max()
        expected_row = (embeddings * embedding_sum).sum(-1)[0, text_columns]
        free = ~torch.isnan(ex.matrix[t]) & ~held[0, text_columns]
        assert free.sum() >= 3
        assert (ex.matrix[t][free] - expected_row[free]).abs().max() <= 1e-3 * expected_row[free].abs().max()
