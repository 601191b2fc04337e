"""Every method of ``spmm.list_methods()`` on the tiny model of every vision-language family: each
runs (finite maps of the right shape, the model's weights unchanged after, the same maps again
with the same seed) or is refused up front with a one-line error saying why; integrated gradients
on LLaVA and PaliGemma equal an independent Gauss–Legendre path integral of autograd gradients
on the HF model itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import spmm
from spmm.errors import SpmmInputError
from spmm.methods.registry import get_method
from tests.hf.test_vlm import (  # noqa: F401
    FAMILY_CASES,
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
RANDOM = ("samples", "model_samples")
"""A method taking one of these draws noise, baselines or weights from its seed."""
DROPS_GREY_VIEWS = {"idefics3", "idefics3_unsplit", "smolvlm"}
"""Families that take a view whose pixel_values are all 0 for padding: DeepLift's default baseline
(mid-grey at their processors' normalisation, mean = std = 0.5) is refused in one line there."""
QUICK = {"llava", "paligemma"}
"""The families of the quick run; the others are marked slow."""


def family_case(name: str):
    return pytest.param(name, marks=() if name in QUICK else pytest.mark.slow)


def load_pair(folder):
    """(spmm model, the HF model and processor loaded independently from the folder)."""
    model = transformers.AutoModelForImageTextToText.from_pretrained(folder).eval()
    return spmm.load(str(folder)), model, transformers.AutoProcessor.from_pretrained(folder)


@pytest.fixture(scope="module", params=[family_case(name) for name in FAMILY_CASES])
def family(request, vlm_folders):  # noqa: F811
    """(family name, spmm model) for every family's tiny model."""
    return request.param, spmm.load(str(vlm_folders(request.param)))


@pytest.fixture(scope="module", params=sorted(QUICK))
def vlm(request, vlm_folders):  # noqa: F811
    """(spmm model, HF model, processor): the families whose processor makes the whole image one
    ``pixel_values`` picture."""
    return load_pair(vlm_folders(request.param))


def fast_params(method: str) -> dict:
    defaults = get_method(method).defaults
    return {name: value for name, value in FAST.items() if name in defaults}


def one_line_refusal(explain, method: str, match: str) -> None:
    with pytest.raises(SpmmInputError, match=match) as error:
        explain()
    assert "\n" not in str(error.value) and (method in str(error.value) or "baseline" in str(error.value))


@pytest.mark.parametrize("method", spmm.list_methods())
def test_every_method_runs_or_is_refused_in_one_line(family, image, method):  # noqa: F811
    name, m = family
    params = fast_params(method)

    def explain(seed=0, **extra):
        return m.explain(image, prompt=PROMPT, target=spmm.Continuation(max_new_tokens=NEW_TOKENS), method=method,
                         seed=seed, **params, **extra)

    if "layer" in get_method(method).defaults:  # Grad-CAM: a layer's map upsampled onto the input's spatial dims
        one_line_refusal(explain, method, "upsamples a layer's map onto the input's spatial dims")
        return
    if name in DROPS_GREY_VIEWS and "deeplift" in method:  # the zero baseline is a view the model drops
        one_line_refusal(explain, method, r"all 0 .*baseline=-1\.0")
        params["baseline"] = -1.0
    weights = {key: value.clone() for key, value in m.lm.state_dict().items()}
    ex = explain()
    assert all(torch.equal(value, weights[key]) for key, value in m.lm.state_dict().items())  # FusionGrad restores
    assert ex.image_maps.dim() == 3 and ex.image_maps.shape[0] == NEW_TOKENS and torch.isfinite(ex.image_maps).all()
    assert ex.image_maps.shape[1:] == ex.image.shape[1:]  # on the image the processor saw
    assert ex.image_maps.abs().amax(dim=(1, 2)).gt(0).all()  # every token's map says something
    assert ex.matrix.shape == (NEW_TOKENS, len(ex.context_tokens))
    defined = ~torch.isnan(ex.matrix)
    assert defined.any(dim=1).all() and torch.isfinite(ex.matrix[defined]).all()
    if any(key in get_method(method).defaults for key in RANDOM):  # the same draws with the same seed, others with another
        again, other = explain(), explain(seed=1)
        assert torch.equal(again.image_maps, ex.image_maps)
        torch.testing.assert_close(again.attributions, ex.attributions, rtol=0, atol=0, equal_nan=True)  # NaN: no column
        assert not torch.equal(other.image_maps, ex.image_maps)


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


@pytest.mark.parametrize("method", ["fusiongrad", "fusion_pullback"])
def test_fusiongrad_perturbs_every_module_that_runs_and_leaves_the_model_unchanged(family, image, method):  # noqa: F811
    """FusionGrad runs the rows' forward on perturbed copies of the weights (torch.func.functional_call):
    every module of the HF model that runs sees weights other than its own (the vision tower, the
    projector and the language model alike: none keeps the user's weights), and after it the model's
    parameters are the very tensors they were, with their values; with no noise it is the gradient."""
    _, m = family
    weights = {key: (value, value.clone()) for key, value in m.lm.state_dict(keep_vars=True).items()}
    own = {module: {key: p.detach().clone() for key, p in module.named_parameters(recurse=False)}
           for module in m.lm.modules() if any(p.count_nonzero() for p in module.parameters(recurse=False))}
    perturbed, ran = set(), set()

    def record(module, args):
        ran.add(module)
        if any(not torch.equal(p, own[module][key]) for key, p in module.named_parameters(recurse=False)):
            perturbed.add(module)

    hooks = [module.register_forward_pre_hook(record) for module in own]
    try:
        m.explain(image, prompt=PROMPT, target=spmm.Continuation(max_new_tokens=1), method=method, seed=0,
                  model_samples=1, input_samples=1, noise=0.0)
    finally:
        for hook in hooks:
            hook.remove()
    assert ran and not [type(module).__name__ for module in ran - perturbed]
    after = m.lm.state_dict(keep_vars=True)
    assert after.keys() == weights.keys()
    assert all(after[key] is tensor and torch.equal(tensor, value) for key, (tensor, value) in weights.items())
    target = spmm.Continuation(max_new_tokens=1)
    plain_method = "soft_pullback" if "pullback" in method else "gradient"
    plain = m.explain(image, prompt=PROMPT, target=target, method=plain_method)
    still = m.explain(image, prompt=PROMPT, target=target, method=method, model_samples=1, input_samples=1, noise=0.0,
                      weight_noise=0.0)
    torch.testing.assert_close(still.image_maps, plain.image_maps, rtol=1e-4, atol=1e-6 * plain.image_maps.abs().max())


def test_the_baseline_named_for_a_padding_view_is_not_one(vlm_folders, image, tmp_path):  # noqa: F811
    """An Idefics3 processor normalising without a mean (mean 0, std 1): black (−1) is the view the
    model drops, so the refusal names white (baseline=1.0), which runs, as does the default (grey)."""
    import shutil

    folder = shutil.copytree(vlm_folders("idefics3_unsplit"), tmp_path / "unit_range")
    processor = transformers.AutoProcessor.from_pretrained(folder)
    processor.image_processor.image_mean, processor.image_processor.image_std = [0.0] * 3, [1.0] * 3
    processor.save_pretrained(folder)
    m = spmm.load(str(folder))
    target = spmm.Continuation(max_new_tokens=1)
    with pytest.raises(SpmmInputError, match=r"pixels \[-1\.0, -1\.0, -1\.0\].*baseline=1\.0, white") as error:
        m.explain(image, prompt=PROMPT, target=target, method="pb_deeplift", baseline=-1.0)
    assert "\n" not in str(error.value)
    for baseline in (1.0, 0.0):
        ex = m.explain(image, prompt=PROMPT, target=target, method="pb_deeplift", baseline=baseline)
        assert torch.isfinite(ex.image_maps).all() and ex.image_maps.abs().max() > 0
