"""Peer explainers (``spmm[peers]``) on tiny random models: LXT against stock LXT, zennit and Captum
against their own documented calls / closed forms, and nothing left patched after a peer ran."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from spmm.bench.explainers import bench_explainers, list_explainers
from spmm.errors import SpmmInputError
from spmm.ruleset import get_ruleset

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')

REFERENCE = Path(__file__).with_name("lxt_reference.py")


def _tiny(arch: str, folder: Path) -> nn.Module:
    from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    sizes = dict(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(num_key_value_heads=1, **sizes))
    else:
        model = BertForSequenceClassification(BertConfig(num_labels=3, **sizes))
    model.save_pretrained(folder)
    return type(model).from_pretrained(folder, attn_implementation="eager").eval()


def _stock_lxt(arch: str, variant: str, folder: Path, embeddings, mask, target) -> torch.Tensor:
    io = folder / f"relevance-{variant}.pt"
    torch.save({"embeddings": embeddings, "mask": mask, "target": target}, f"{io}.in.pt")
    subprocess.run([sys.executable, str(REFERENCE), arch, variant, str(folder), str(io)], check=True,
                   capture_output=True)
    return torch.load(io)


def _state(model: nn.Module) -> tuple:
    """Everything a peer could leave behind: parameters, instance attributes, configs, class methods, registries."""
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    modules = tuple((name, sorted(m.__dict__), len(m._forward_hooks), len(m._backward_hooks), len(m._forward_pre_hooks))
                    for name, m in model.named_modules())
    classes = tuple((cls, cls.__dict__.get("forward")) for cls in {type(m) for m in model.modules()} | {nn.Dropout, nn.LayerNorm})
    return (modules, classes, model.config._attn_implementation, sorted(AttentionInterface._global_mapping),
            sorted(AttentionMaskInterface._global_mapping),
            {k: v.clone() for k, v in model.state_dict().items()})


def _same_state(before: tuple, after: tuple) -> None:
    assert before[:5] == after[:5]
    for name, value in before[5].items():
        torch.testing.assert_close(after[5][name], value, rtol=0, atol=0)


@pytest.fixture(scope="module")
def lxt():
    return pytest.importorskip("lxt", reason="the peers extra is not installed: pip install 'spmm[peers]'")


@pytest.mark.heavy  # stock LXT runs in a subprocess (its patches are process-wide): ~30 s each
@pytest.mark.parametrize("variant", ["attnlrp", "cp_lrp"])
def test_lxt_llama_matches_stock_lxt_and_leaves_nothing_behind(lxt, tmp_path, variant):
    from spmm.adapters.peers.lxt_rules import lxt_rules

    model = _tiny("llama", tmp_path)
    embeddings = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])  # left padding, as generation pads
    target = torch.tensor([3, 7])
    before = _state(model)
    plain = model(inputs_embeds=embeddings, attention_mask=mask).logits
    x = embeddings.clone().requires_grad_(True)
    with lxt_rules(model, variant):
        logits = model(inputs_embeds=x, attention_mask=mask).logits
        logits[torch.arange(2), -1, target].sum().backward()
    torch.testing.assert_close(logits, plain, rtol=0, atol=0)  # the forward pass is unchanged
    ours = (x * x.grad).sum(-1)
    torch.testing.assert_close(ours, _stock_lxt("llama", variant, tmp_path, embeddings, mask, target), rtol=1e-6, atol=1e-7)
    _same_state(before, _state(model))


@pytest.mark.heavy
@pytest.mark.parametrize("variant", ["attnlrp", "cp_lrp"])
def test_lxt_bench_explainer_on_bert_matches_stock_lxt_with_padding(lxt, tmp_path, variant):
    from spmm.modalities.text.embedding import EmbeddingModel, HFOutput

    model = _tiny("bert", tmp_path)
    embeddings = torch.randn(2, 6, 16, generator=torch.Generator().manual_seed(2))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])  # right padding must stay masked
    target = torch.tensor([0, 2])
    body = HFOutput(model)
    before = _state(model)
    explain = bench_explainers([f"lxt:{variant}"], get_ruleset("default"))[f"lxt:{variant}"]
    scored = EmbeddingModel(body, mask, embeddings, torch.ones(2, 6, dtype=torch.bool))  # the bench's text model
    grad = explain(scored, embeddings, target)
    ours = (embeddings * grad).sum(-1)
    torch.testing.assert_close(ours, _stock_lxt("bert", variant, tmp_path, embeddings, mask, target), rtol=1e-5, atol=1e-6)
    plain = torch.autograd.functional.jacobian(lambda e: body(e, mask)[torch.arange(2), target].sum(), embeddings)
    assert not torch.allclose(grad, plain, atol=1e-4)  # the rules changed the backward pass
    _same_state(before, _state(model))


@pytest.mark.parametrize("variant", ["attnlrp", "cp_lrp"])
def test_lxt_explainer_keeps_the_forward_changes_the_backward_and_restores(lxt, tmp_path, variant):
    """The fast check of every run (the heavy tests compare with stock LXT): CP-LRP and AttnLRP on a
    tiny Llama keep the logits, differ from the plain gradient, and leave model, classes and registries as they were."""
    from spmm.adapters.peers.lxt_rules import lxt_rules

    model = _tiny("llama", tmp_path)
    embeddings = torch.randn(1, 4, 16, generator=torch.Generator().manual_seed(3))
    before = _state(model)
    plain_x = embeddings.clone().requires_grad_(True)
    plain = model(inputs_embeds=plain_x).logits
    plain[0, -1, 5].backward()
    x = embeddings.clone().requires_grad_(True)
    with lxt_rules(model, variant):
        logits = model(inputs_embeds=x).logits
        logits[0, -1, 5].backward()
    torch.testing.assert_close(logits, plain, rtol=0, atol=0)
    assert not torch.allclose(x.grad, plain_x.grad, atol=1e-4)
    _same_state(before, _state(model))


def test_lxt_rules_restore_after_an_exception(lxt, tmp_path):
    from spmm.adapters.peers.lxt_rules import lxt_rules

    model = _tiny("llama", tmp_path)
    before = _state(model)
    with pytest.raises(RuntimeError, match="inside"):
        with lxt_rules(model, "attnlrp"):
            raise RuntimeError("inside")
    _same_state(before, _state(model))
    with pytest.raises(SpmmInputError, match="variant"):
        with lxt_rules(model, "attn"):
            pass


def test_zennit_matches_its_documented_call_and_unhooks(tmp_path):
    pytest.importorskip("zennit", reason="the peers extra is not installed: pip install 'spmm[peers]'")
    from torchvision.models import resnet18
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonGammaBox, EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer

    from spmm.adapters.vision.models import UnitRangeInput

    torch.manual_seed(0)
    net = resnet18(num_classes=5).eval()
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    model = UnitRangeInput(net, mean, std)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    targets = torch.tensor([1, 4])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    explainers = bench_explainers(["zennit:epsilon_plus_flat", "zennit:epsilon_gamma_box"], get_ruleset("default"))
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    normalised = ((images + 1) / 2 - m) / s  # zennit's docs: the network on normalised images, box = the pixel range
    low, high = (-m / s).expand_as(normalised), ((1 - m) / s).expand_as(normalised)
    for name, composite in [("zennit:epsilon_plus_flat", EpsilonPlusFlat(canonizers=[ResNetCanonizer()])),
                            ("zennit:epsilon_gamma_box", EpsilonGammaBox(low=low, high=high, canonizers=[ResNetCanonizer()]))]:
        ours = explainers[name](model, images, targets)
        with Gradient(model=net, composite=composite) as attributor:
            _, expected = attributor(normalised.clone().requires_grad_(True), torch.eye(5)[targets])
        torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-7)
        assert not torch.allclose(ours, torch.zeros_like(ours))
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, state[name], rtol=0, atol=0)
    assert all(not mod._forward_hooks and not mod._backward_hooks and not mod._forward_pre_hooks for mod in model.modules())


def test_captum_explainers_match_closed_forms():
    torch.manual_seed(0)
    linear = nn.Linear(6, 3)
    x = torch.randn(4, 6)
    targets = torch.tensor([0, 2, 1, 2])
    explainers = bench_explainers(["captum:saliency", "captum:integrated_gradients"], get_ruleset("default"))
    weights = linear.weight.detach()[targets]
    torch.testing.assert_close(explainers["captum:saliency"](linear, x, targets), weights.abs())
    torch.testing.assert_close(explainers["captum:integrated_gradients"](linear, x, targets), x * weights)  # zero baseline


def test_peer_names_are_listed_and_keyed_by_version():
    names = list_explainers()
    for name in ("lxt:attnlrp", "lxt:cp_lrp", "zennit:epsilon_plus_flat", "zennit:epsilon_gamma_box",
                 "captum:integrated_gradients", "captum:saliency"):
        assert name in names
    explain = bench_explainers(["captum:saliency"], get_ruleset("default"))["captum:saliency"]
    assert explain.method == "captum:saliency" and "captum" in explain.params
    with pytest.raises(SpmmInputError, match="unknown explainer"):
        bench_explainers(["lxt:nope"], get_ruleset("default"))


def test_decoder_scores_inseq_saliency_and_lxt_per_generated_token():
    """inseq's per-step saliency equals the normalised L2 norm of |∂ logit / ∂ embeddings| computed here;
    LXT's per-step scores are Σ embedding · gradient under its rules; both cover the prefix of each step."""
    pytest.importorskip("inseq", reason="the peers extra is not installed: pip install 'spmm[peers]'")
    pytest.importorskip("lxt", reason="the peers extra is not installed: pip install 'spmm[peers]'")
    from transformers import AutoTokenizer

    from spmm.adapters.peers.decoders import greedy_continuation, random_llama, token_scores
    from spmm.adapters.peers.lxt_rules import lxt_rules
    from spmm.adapters.text.models import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
    model = random_llama(len(tokenizer), 0, 32, 1)
    prompt = torch.tensor(tokenizer("the movie was good", add_special_tokens=False).input_ids)
    ids = torch.cat([prompt, greedy_continuation(model, prompt, 2)])
    if tokenizer(tokenizer.decode(ids), add_special_tokens=False).input_ids != ids.tolist():
        pytest.skip("this seed's continuation does not survive re-tokenising")
    embeddings = model.get_input_embeddings()(ids.view(1, -1)).detach()
    inseq_scores = token_scores("inseq:saliency", model, tokenizer, ids, 2)
    lxt_scores = token_scores("lxt:cp_lrp", model, tokenizer, ids, 2)
    for t in range(2):
        length = prompt.numel() + t
        x = embeddings[:, :length].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(inputs_embeds=x).logits[0, -1, ids[length]], x)
        norms = grad[0].abs().norm(dim=-1)
        torch.testing.assert_close(inseq_scores[t], norms / norms.sum(), rtol=1e-4, atol=1e-6)
        x = embeddings[:, :length].clone().requires_grad_(True)
        with lxt_rules(model, "cp_lrp"):
            (grad,) = torch.autograd.grad(model(inputs_embeds=x).logits[0, -1, ids[length]], x)
        torch.testing.assert_close(lxt_scores[t], (grad * x).sum(-1)[0].detach())


def test_peer_parameters_are_checked():
    with pytest.raises(SpmmInputError, match="takes no parameters"):
        bench_explainers(["captum:saliency"], get_ruleset("default"), params={"captum:saliency": {"steps": 3}})
