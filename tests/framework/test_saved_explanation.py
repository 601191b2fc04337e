"""One result contract: ``aggregate()`` gives an Explanation, ``Explanation.load`` reads back what
``save(path.json)`` wrote (its ``to_dict`` equals the saved one) for every modality."""

from __future__ import annotations

import json
import math

import pytest
import torch

import spmm
from spmm.errors import SpmmInputError

from tests.audio.audio_signals import speechlike


@pytest.fixture(scope="module")
def explanations() -> dict[str, spmm.Explanation]:
    torch.manual_seed(0)
    image = spmm.load("shapes-resnet").explain(torch.rand(2, 3, 64, 64) * 2 - 1, [0, 2])
    text = spmm.load("minilm-sst2").explain(["a gripping, funny film", "Dull. The plot never comes together!"])
    lm = spmm.load("tiny-lm")
    generation = lm.explain("the movie was", spmm.Continuation(" very good"))
    audio = spmm.load("honk-res8", random_init=True).explain(speechlike(1.0), "yes")
    return {"image": image, "text": text, "generation": generation, "audio": audio,
            "words": text.aggregate("sentences"), "patches": image.aggregate("patches", size=16),
            "generation words": generation.aggregate("words"), "frames": audio.aggregate("frames", frames=10),
            "sequence logprob": lm.explain("the movie was", spmm.SequenceLogProb(" good"), "gradient")}


@pytest.mark.parametrize("kind", ["image", "text", "generation", "audio", "words", "patches", "generation words",
                                  "frames", "sequence logprob"])
def test_load_reads_back_what_save_wrote(explanations, kind, tmp_path):
    explanation = explanations[kind]
    path = explanation.save(tmp_path / "explanation.json")
    written = json.loads(path.read_text())
    loaded = spmm.Explanation.load(path)
    assert loaded.to_dict() == written
    assert json.loads(loaded.to_json()) == written
    assert len(loaded) == len(explanation) and loaded.modality == explanation.modality
    for i in range(len(explanation)):
        expected = explanation.item_scores(i).double()
        got = loaded.item_scores(i)
        assert got.shape == expected.shape
        assert torch.equal(torch.isnan(got), torch.isnan(expected))
        # the file keeps six significant digits
        torch.testing.assert_close(got.nan_to_num(), expected.nan_to_num(), rtol=1e-5, atol=1e-9)
    if kind in ("image", "text", "audio"):  # class targets: the same summary lines
        assert loaded.summary().splitlines()[1:] == explanation.summary().splitlines()[1:]


def test_aggregate_returns_an_explanation_of_the_same_samples(explanations):
    text, words = explanations["text"], explanations["words"]
    assert isinstance(words, spmm.Explanation) and words.units == "sentences" and words.modality == "text"
    assert words.group_names[1] == ["Dull.", "The plot never comes together!"]
    for i in range(len(text)):
        total = float(text.token_scores()[i].sum())
        assert float(words.item_scores(i).sum()) == pytest.approx(total, rel=1e-5, abs=1e-7)
    assert math.isnan(float(words.attributions[0, 1]))  # text 0 has one sentence
    patches = explanations["patches"]
    torch.testing.assert_close(patches.attributions, explanations["image"].attributions.sum(1).reshape(2, 4, 16, 4, 16)
                               .sum((2, 4)))
    assert patches.predictions == explanations["image"].predictions and patches.sources == explanations["image"].sources


def test_load_refuses_what_it_cannot_read(tmp_path):
    with pytest.raises(SpmmInputError, match="no explanation file"):
        spmm.Explanation.load(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"schema": "something/1"}')
    with pytest.raises(SpmmInputError, match="not an explanation file"):
        spmm.Explanation.load(tmp_path / "other.json")
    with pytest.raises(SpmmInputError, match="reads the .json files"):
        spmm.Explanation.load(tmp_path / "explanation.pt")


def test_samples_of_different_shapes_keep_undefined_cells_in_their_place(tmp_path):
    """Rows of different lengths are padded with NaN after their end; a null cell inside a row stays a
    NaN at its own position (it is not dropped, which would shift the cells after it)."""
    item = {"target": {"index": 0, "label": "x", "score": 1.0}, "predictions": [], "extra": {}}
    record = {"schema": "spmm.explanation/1", "modality": "text", "model": "m", "method": "gradient", "params": {},
              "rules": None, "units": "words", "exact_gradient_ops": {}, "items": [
                  {**item, "input": "a", "shape": [3], "scores": [1.0, None, 3.0]},
                  {**item, "input": "b", "shape": [2], "scores": [4.0, 5.0]}]}
    path = tmp_path / "x.json"
    path.write_text(json.dumps(record))
    loaded = spmm.Explanation.load(path)
    expected = torch.tensor([[1.0, math.nan, 3.0], [4.0, 5.0, math.nan]], dtype=torch.float64)
    torch.testing.assert_close(loaded.attributions, expected, equal_nan=True)
    assert loaded.to_dict()["items"] == record["items"]
