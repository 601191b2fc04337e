"""Comprehensiveness, sufficiency and the pointing game in closed form: linear models, where
removing a group changes the logit by exactly its weighted difference to the baseline."""

import math

import pytest
import torch

from spmm.errors import SpmmInputError
from spmm.metrics import Comprehensiveness, FeatureGroups, Focus, PointingGame, Sufficiency, make_metric, square_patches

TARGETS = torch.tensor([0, 1, 2, 0])
FRACTIONS = (0.1, 0.2, 0.5)


def top_k(n: int, fraction: float) -> int:
    """ERASER's k: min(n, max(1, ⌈f·n⌉)), as in the text benchmark."""
    return min(n, max(1, math.ceil(fraction * n)))


def test_linear_model_comprehensiveness_and_sufficiency_on_image_patches(linear_model, images):
    w = linear_model.weight.detach()[:, TARGETS].T.reshape(-1, 1, 8, 8)
    attributions = w * images  # contribution of each pixel to the target logit
    patches = square_patches((1, 8, 8), 2)  # 16 groups
    comp = Comprehensiveness(probability=False)(linear_model, images, TARGETS, attributions, groups=patches).scores
    suff = Sufficiency(probability=False)(linear_model, images, TARGETS, attributions, groups=patches).scores
    labels = patches.labels.expand(1, 8, 8)
    for i in range(4):
        contribution = [float(attributions[i][labels == g].sum()) for g in range(16)]
        ranked = sorted(range(16), key=lambda g: -contribution[g])
        removed = [sum(contribution[g] for g in ranked[:top_k(16, f)]) for f in FRACTIONS]
        kept_out = [sum(contribution[g] for g in ranked[top_k(16, f):]) for f in FRACTIONS]
        assert comp[i].item() == pytest.approx(sum(removed) / 3, abs=1e-10)
        assert suff[i].item() == pytest.approx(sum(kept_out) / 3, abs=1e-10)


class TokenClassifier(torch.nn.Module):
    """logits = Σ_l,d e[l, d] W[l, d, c] on (B, L, D) token embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(6, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4)))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bld,ldc->bc", embeddings.double(), self.weight)


WORDS = torch.tensor([[-1, 0, 0, 1, 2, -1], [-1, 0, 1, -1, -1, -1]])  # [CLS] w0 w0 w1 w2 [SEP]; [CLS] w0 w1 [SEP] pad pad


@pytest.mark.parametrize("probability", [False, True])
def test_text_comprehensiveness_and_sufficiency_with_a_mask_embedding(probability):
    model = TokenClassifier().eval()
    generator = torch.Generator().manual_seed(5)
    embeddings = torch.randn(2, 6, 4, dtype=torch.float64, generator=generator)
    mask_embedding = torch.randn(4, dtype=torch.float64, generator=generator)
    targets = torch.tensor([2, 1])
    attributions = model.weight.detach()[:, :, targets].permute(2, 0, 1)  # the gradient
    groups = FeatureGroups(WORDS.unsqueeze(-1), 3, per_sample=True)
    settings = {"baseline": mask_embedding, "times_input": True, "probability": probability}
    comp = make_metric("comprehensiveness", **settings)(model, embeddings, targets, attributions, groups=groups)
    suff = make_metric("sufficiency", **settings)(model, embeddings, targets, attributions, groups=groups)
    for i in range(2):
        def score(kept_words):
            e = embeddings[i].clone()
            for position, word in enumerate(WORDS[i].tolist()):
                if word >= 0 and word not in kept_words:
                    e[position] = mask_embedding
            with torch.no_grad():
                logits = model(e.unsqueeze(0))[0]
            return float(torch.softmax(logits, 0)[targets[i]] if probability else logits[targets[i]])

        words = sorted(set(WORDS[i].tolist()) - {-1})
        token_score = (attributions[i] * embeddings[i]).sum(-1)  # ⟨attr, embedding⟩ per token
        word_score = {w: float(token_score[WORDS[i] == w].sum()) for w in words}
        ranked = sorted(words, key=lambda w: -word_score[w])
        full = score(words)
        expected_comp = sum(full - score(ranked[top_k(len(words), f):]) for f in FRACTIONS) / 3
        expected_suff = sum(full - score(ranked[:top_k(len(words), f)]) for f in FRACTIONS) / 3
        assert comp.scores[i].item() == pytest.approx(expected_comp, abs=1e-12)
        assert suff.scores[i].item() == pytest.approx(expected_suff, abs=1e-12)


def test_text_deletion_ranks_words_by_their_signed_score_with_times_input():
    model = TokenClassifier().eval()
    generator = torch.Generator().manual_seed(7)
    embeddings = torch.randn(2, 6, 4, dtype=torch.float64, generator=generator)
    mask_embedding = torch.randn(4, dtype=torch.float64, generator=generator)
    targets = torch.tensor([0, 2])
    attributions = model.weight.detach()[:, :, targets].permute(2, 0, 1)
    groups = FeatureGroups(WORDS.unsqueeze(-1), 3, per_sample=True)
    metric = make_metric("deletion_auc", groups_per_step=1, baseline=mask_embedding, times_input=True, probability=False)
    area = metric(model, embeddings, targets, attributions, groups=groups).scores
    for i in range(2):
        words = sorted(set(WORDS[i].tolist()) - {-1})
        token_score = (attributions[i] * embeddings[i]).sum(-1)
        ranked = sorted(words, key=lambda w: -float(token_score[WORDS[i] == w].sum()))
        curve = []
        for step in range(len(words) + 1):
            e = embeddings[i].clone()
            for position, word in enumerate(WORDS[i].tolist()):
                if word in ranked[:step]:
                    e[position] = mask_embedding
            curve.append(float(model(e.unsqueeze(0))[0, targets[i]]))
        expected = sum((a + b) / 2 for a, b in zip(curve, curve[1:])) / len(words)  # trapezoid on [0, 1]
        assert area[i].item() == pytest.approx(expected, abs=1e-10)


def test_fractions_are_checked():
    with pytest.raises(SpmmInputError, match="fractions"):
        Comprehensiveness(fractions=[0.0, 0.5])
    assert Sufficiency.higher_is_better is False and Comprehensiveness.higher_is_better is True


def test_pointing_game_is_the_positive_token_relevance_in_the_target_words():
    generator = torch.Generator().manual_seed(6)
    embeddings = torch.randn(2, 6, 4, generator=generator)
    attributions = torch.randn(2, 6, 4, generator=generator)
    target = torch.tensor([[True, False, True], [False, True, False]])
    groups = FeatureGroups(WORDS.unsqueeze(-1), 3, per_sample=True)
    scores = PointingGame()(None, embeddings, torch.zeros(2, dtype=torch.long), attributions, groups=groups, target_groups=target).scores
    for i in range(2):
        token = (attributions[i] * embeddings[i]).sum(-1).clamp_min(0)  # positive part of each token's score
        words = WORDS[i]
        inside = sum(float(token[p]) for p in range(6) if words[p] >= 0 and target[i, words[p]])
        total = sum(float(token[p]) for p in range(6) if words[p] >= 0)
        assert scores[i].item() == pytest.approx(inside / total if total > 0 else 0.0, abs=1e-6)
    assert PointingGame().settings() == {"times_input": True, "sum_dims": [-1], "eps": 1e-9}


def test_focus_on_audio_slots_is_the_positive_attribution_share():
    """Audio mosaics: (1, T, F) spectrogram inputs, slots of frames, relevance = attribution itself."""
    generator = torch.Generator().manual_seed(7)
    attributions = torch.randn(2, 1, 8, 5, generator=generator)
    slots = FeatureGroups((torch.arange(8) // 2).view(1, 8, 1), 4)  # 4 slots of 2 frames
    target = torch.tensor([[True, False, False, True], [False, True, True, False]])
    scores = Focus(times_input=False)(None, torch.randn(2, 1, 8, 5), torch.zeros(2, dtype=torch.long), attributions,
                                      groups=slots, target_groups=target).scores
    for i in range(2):
        per_frame = attributions[i, 0].clamp_min(0).sum(-1)
        in_target = torch.tensor([bool(target[i, t // 2]) for t in range(8)])
        assert scores[i].item() == pytest.approx(float(per_frame[in_target].sum() / per_frame.sum()), abs=1e-6)
