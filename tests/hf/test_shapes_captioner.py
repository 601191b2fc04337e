"""The shipped ``shapes-captioner`` and its ground-truth bench: it loads by name, captions held-out
scenes as well as its card says (through ``transformers``' own processor and ``generate``), its word
rows equal the model's own logits, the attention baseline equals softmax(QKᵀ/√d) recomputed from the
decoder's inputs, ``mass_other`` equals a hand computation, and ``spmm bench groundtruth --model
shapes-captioner`` runs on two scenes, writes its files and resumes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import spmm
from spmm.errors import SpmmInputError

transformers = pytest.importorskip("transformers")

from spmm.adapters.hf.captioner_bench import caption_batches, scene_image, word_model  # noqa: E402
from spmm.adapters.hf.shapes_captioner import PROMPT, SIDE, captioner_card, captioner_folder  # noqa: E402
from spmm.modalities.image.shapes_captions import captioned_scenes_at  # noqa: E402

HELD_OUT = 12
WORDS_PER_CAPTION = 7
SHAPE_WORDS = (2, 6)
"""Where the shape words are in a caption ("a red circle and a blue square")."""


@pytest.fixture(scope="module")
def captioner():
    return spmm.load("shapes-captioner")


@pytest.fixture(scope="module")
def hf_model():
    """The shipped model and processor loaded by ``transformers`` itself."""
    folder = captioner_folder()
    model = transformers.LlavaForConditionalGeneration.from_pretrained(folder, attn_implementation="eager").eval()
    return model, transformers.AutoProcessor.from_pretrained(folder)


def test_loads_by_name_with_no_file(captioner):
    assert captioner.name == "shapes-captioner" and captioner.modality.name == "vision-language"
    assert type(captioner.lm).__name__ == "LlavaForConditionalGeneration"
    assert "shapes-captioner" in spmm.list_models()
    card = captioner_card()
    assert card["test_seed"] != card["train_seed"] and 0 <= card["word_accuracy"] <= 1


def test_greedy_captions_of_held_out_scenes(hf_model):
    """Word accuracy, and the accuracy of the shape words alone, on a few held-out scenes ≥ the card's
    (on 500 scenes) minus 4 binomial standard errors of the sample here (HELD_OUT · 7 words, HELD_OUT · 2
    shape words); the shape words' bound stays far above chance (1/6): the model names shapes."""
    model, processor = hf_model
    card = captioner_card()
    scenes = captioned_scenes_at(range(HELD_OUT), card["test_seed"] + 1, SIDE)
    right = shapes_right = 0
    for i in range(HELD_OUT):
        batch = processor(images=scene_image(scenes, i), text=f"{processor.image_token}\n{PROMPT}", return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=10, do_sample=False)
        words = processor.tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True).split()
        expected = scenes.captions[i].split()
        hits = [w == (words + [""] * WORDS_PER_CAPTION)[k] for k, w in enumerate(expected)]
        right += sum(hits)
        shapes_right += sum(hits[k] for k in SHAPE_WORDS)
    bounds = [p - 4 * (p * (1 - p) / n) ** 0.5 for n, p in ((HELD_OUT * WORDS_PER_CAPTION, card["word_accuracy"]),
                                                          (HELD_OUT * len(SHAPE_WORDS), card["shape_word_accuracy"]))]
    assert right / (HELD_OUT * WORDS_PER_CAPTION) >= bounds[0] - 1e-9
    assert shapes_right / (HELD_OUT * len(SHAPE_WORDS)) >= bounds[1] - 1e-9 and bounds[1] > 1 / 6


def test_word_rows_are_the_models_own_logits(captioner, hf_model):
    """WordLogits (the bench's row model) on the processor's pixels equals the HF model's logit of
    each caption word at the position before it, on the processor's prompt + caption."""
    model, processor = hf_model
    scenes = captioned_scenes_at([0], 3, SIDE)
    image, caption = scene_image(scenes, 0), scenes.captions[0]
    rows, pixels = word_model(captioner.modality, image, PROMPT, caption)
    batch = processor(images=image, text=f"{processor.image_token}\n{PROMPT} {caption}", return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits[0]
        got = rows(pixels)[0]
    ids = batch["input_ids"][0]
    start = len(ids) - WORDS_PER_CAPTION
    expected = torch.stack([logits[p - 1, ids[p]] for p in range(start, len(ids))])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def recomputed_attention(model, pixels, ids, query: int) -> torch.Tensor:
    """softmax(QKᵀ/√d + causal mask) of every GPT-2 block, from the input of its attention (hooked on
    ``ln_1``), at row ``query``, averaged over heads and layers: (1, L)."""
    decoder = model.model.language_model
    inputs = []
    hooks = [block.ln_1.register_forward_hook(lambda m, i, o: inputs.append(o)) for block in decoder.h]
    try:
        with torch.no_grad():
            model(pixel_values=pixels, input_ids=ids)
    finally:
        for hook in hooks:
            hook.remove()
    heads = model.config.text_config.n_head
    rows = []
    for block, x in zip(decoder.h, inputs):
        q, k, _ = block.attn.c_attn(x).split(x.shape[-1], dim=-1)
        q = q.view(1, -1, heads, x.shape[-1] // heads).transpose(1, 2).double()
        k = k.view(1, -1, heads, x.shape[-1] // heads).transpose(1, 2).double()
        scores = q @ k.transpose(-1, -2) / (x.shape[-1] // heads) ** 0.5
        length = scores.shape[-1]
        scores = scores.masked_fill(torch.ones(length, length, dtype=torch.bool).triu(1), float("-inf"))
        rows.append(scores.softmax(-1)[0, :, query].mean(0))
    return torch.stack(rows).mean(0, keepdim=True)


def test_attention_baseline_equals_the_decoder_attention_weights(captioner, hf_model):
    model, _ = hf_model
    scenes = captioned_scenes_at([1], 3, SIDE)
    rows, pixels = word_model(captioner.modality, scene_image(scenes, 0), PROMPT, scenes.captions[0])
    words = torch.tensor([1, 6])
    maps = spmm.explain(rows, pixels.expand(2, -1, -1, -1), words, method="attention:image").attributions.sum(1)
    image = rows.input_ids[0] == model.config.image_token_id
    side = int(image.sum() ** 0.5)
    for r, w in enumerate(words.tolist()):
        query = int(rows.positions[w]) - 1
        weights = recomputed_attention(model, pixels, rows.input_ids, query)[:, image].float()
        expected = F.interpolate(weights.view(1, 1, side, side), size=(SIDE, SIDE), mode="bilinear",
                                 align_corners=False)[0, 0]
        torch.testing.assert_close(maps[r], expected, rtol=1e-4, atol=1e-6)


def test_attention_baseline_refuses_a_model_without_image_tokens():
    with pytest.raises(SpmmInputError, match="attention over its image"):
        spmm.explain(torch.nn.Linear(4, 2).eval(), torch.randn(1, 4), 0, method="attention:image")


def test_other_mass_is_the_share_of_relevance_on_the_other_mask(captioner):
    batch = caption_batches(captioner.modality, PROMPT, 1, 0, SIDE)[0]
    attributions = torch.randn(batch.inputs.shape, generator=torch.Generator().manual_seed(0))
    result = spmm.metrics.OtherMass()(None, batch.inputs, batch.targets, attributions,
                                      other_mask=batch.metric_kwargs["other_mask"])
    pixel = attributions.abs().sum(1).flatten(1).double()
    other = batch.metric_kwargs["other_mask"].flatten(1)
    torch.testing.assert_close(result.scores, (pixel * other).sum(1) / pixel.sum(1))
    assert not (batch.metric_kwargs["mask"] & batch.metric_kwargs["other_mask"]).any()


def test_bench_command_on_two_scenes_writes_its_files_and_resumes(tmp_path, capsys):
    from spmm.cli import main

    out = tmp_path / "bench"
    command = ["bench", "groundtruth", "--model", "shapes-captioner", "--n", "2", "--seed", "7",
               "--explainers", "soft_pullback,attention:image", "--out", str(out)]
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "Intervention check" in printed and "mass_other" in printed
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == 2 * 4 * 2 * 5 and set(scores.explainer) == {"soft_pullback", "attention:image"}
    assert set(scores.metric) == {"mass_accuracy", "mass_other", "pointing_hit", "mask_auroc", "rank_accuracy"}
    interventions = json.loads((out / "interventions.json").read_text())
    assert interventions["words"] == 2 * 4 and 0 <= interventions["named_deleted_drop"] <= 1
    for name in ("summary.csv", "paired.csv", "summary.json", "summary.md", "interventions.csv", "settings.json"):
        assert (out / name).is_file()
    stamps = sorted(p.stat().st_mtime_ns for p in (out / "checkpoints").iterdir())
    assert main(command + ["--report-only"]) == 0  # resumes from its checkpoints, computes nothing
    assert sorted(p.stat().st_mtime_ns for p in (out / "checkpoints").iterdir()) == stamps
    pd.testing.assert_frame_equal(pd.read_csv(out / "scores.csv"), scores)


def test_bench_refuses_other_data(tmp_path, capsys):
    from spmm.cli import main

    assert main(["bench", "groundtruth", "--model", "shapes-captioner", "--n", "1", "--data", str(tmp_path),
                 "--explainers", "gradient", "--out", str(tmp_path / "o")]) == 2
    assert "captioned scenes" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["gradient", "soft_pullback"])
def test_bench_rows_are_the_public_explanations_image_maps(captioner, method, tmp_path):
    """The bench's map of a naming word equals that word's row of ``ex.image_maps`` from
    ``m.explain(image, prompt=..., target=spmm.Continuation(text=caption))`` (the VLM path, which
    also explains the prompt's embeddings), and the explanation saves as the HTML token strip."""
    scenes = captioned_scenes_at([2], 3, SIDE)
    image, caption = scene_image(scenes, 0), scenes.captions[0]
    ex = captioner.explain(image, prompt=PROMPT, target=spmm.Continuation(text=caption), method=method)
    assert ex.row_tokens == caption.split() and ex.image_maps.shape == (WORDS_PER_CAPTION, SIDE, SIDE)
    rows, pixels = word_model(captioner.modality, image, PROMPT, caption)
    words = torch.tensor([1, 2, 5, 6])
    maps = spmm.explain(rows, pixels.expand(4, -1, -1, -1), words, method=method,
                        rules=captioner.rules).attributions.sum(1)
    torch.testing.assert_close(maps, ex.image_maps[words], rtol=1e-4, atol=1e-6)
    ex.save(tmp_path / "strip.html")
    assert all(word in (tmp_path / "strip.html").read_text() for word in caption.split())


def test_random_init_is_the_same_architecture_untrained_and_seeded(captioner):
    torch.manual_seed(3)
    first = spmm.load("shapes-captioner", random_init=True)
    torch.manual_seed(3)
    second = spmm.load("shapes-captioner", random_init=True)
    shipped, drawn, again = (m.lm.state_dict() for m in (captioner, first, second))
    assert shipped.keys() == drawn.keys()
    assert all(torch.equal(drawn[k], again[k]) for k in drawn)
    assert not torch.equal(shipped["lm_head.weight"], drawn["lm_head.weight"])
    batch = caption_batches(first.modality, PROMPT, 1, 0, SIDE)[0]  # its attention baseline runs (eager attention)
    assert spmm.explain(batch.model, batch.inputs, batch.targets, method="attention:image").attributions.shape == batch.inputs.shape
