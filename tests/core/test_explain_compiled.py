"""``spmm.explain(..., compile=...)`` and ``Explainable.compile()``: the compiled model's SoftPullback
equals the eager one and an independent reference; what a compiled graph would hide is refused.

Compilation uses the ``aot_eager`` backend (the functionalisation and forward/backward partitioning
of the default backend without inductor's slow CPU code generation).
"""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

import spmm
from spmm import SpmmInputError, SpmmParameterError
from tests.core.test_compile import _Embeds, _relative  # one copy of the test helpers

pytestmark = pytest.mark.slow  # left out of the quick run (pytest -m 'not slow')


@pytest.fixture(autouse=True)
def _fresh_compile_caches():
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    yield
    torch._dynamo.reset()



class _BnReluPoolNet(nn.Module):
    """conv → batch norm → in-place ReLU → 2×2 max-pool → linear: (B, 3, 8, 8) -> (B, 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.norm = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.relu, self.pool, self.fc = nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Linear(6 * 4 * 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.relu(self.norm(self.conv(x)))).flatten(1))


def _reference_pullback(model: _BnReluPoolNet, x: torch.Tensor, target: int) -> torch.Tensor:
    """SPEC §2 written out: the ReLU with value relu(b) and slope Φ(b/0.6), each pool window as
    Σ softmax(r/0.3)·r with the weights held constant; the input gradient of that network (float64)."""
    model = model.double()
    x = x.double().requires_grad_(True)
    b = model.norm(model.conv(x))
    r = F.relu(b.detach()) + (b - b.detach()) * torch.special.ndtr(b.detach() / 0.6)
    windows = r.unfold(2, 2, 2).unfold(3, 2, 2).flatten(-2)  # (B, C, 4, 4, 4)
    weights = torch.softmax(windows.detach() / 0.3, dim=-1)
    pooled = (weights * windows).sum(-1)
    (grad,) = torch.autograd.grad(model.fc(pooled.flatten(1))[:, target].sum(), x)
    return grad.float()


def test_compiled_cnn_matches_the_eager_pullback_and_the_reference():
    torch.manual_seed(0)
    model = _BnReluPoolNet().eval()
    model.norm.running_mean.normal_(0, 0.5)
    model.norm.running_var.uniform_(0.5, 2.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    eager = spmm.explain(model, x, 2).attributions
    compiled = spmm.explain(model, x, 2, compile="aot_eager").attributions
    reference = _reference_pullback(_copy(model), x, 2)
    assert _relative(eager, reference) <= 1e-5
    assert _relative(compiled, reference) <= 1e-4
    assert _relative(compiled, eager) <= 1e-4
    gradient = spmm.explain(model, x, 2, "gradient", compile="aot_eager").attributions
    assert _relative(compiled, gradient) > 0.05, "the compiled graph must carry the SP rules"
    frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    torch.testing.assert_close(spmm.explain(model, x, 2, compile="aot_eager").attributions, compiled)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == frames, "the compiled model is reused"
    assert getattr(model, "_compiled_call_impl", None) is None and type(model) is _BnReluPoolNet
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def _copy(model: nn.Module) -> nn.Module:
    clone = type(model)()
    clone.load_state_dict(model.state_dict())
    return clone.eval()


def test_compiled_explainable_vit_matches_the_eager_one():
    """``m.compile()`` returns a compiled copy; ``m`` and its module stay eager."""
    torch.manual_seed(1)
    module = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, depth=2, num_classes=5).eval()
    m = spmm.load(module, modality="image", size=32)
    fast = m.compile("aot_eager")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    eager = m.explain(x, target=3).attributions
    compiled = fast.explain(x, target=3).attributions
    assert _relative(compiled, eager) <= 1e-4
    assert _relative(compiled, m.explain(x, target=3, method="gradient").attributions) > 0.05
    assert m.model is module and getattr(module, "_compiled_call_impl", None) is None
    assert fast.model is not module and fast.rules == m.rules


def test_explaining_a_compiled_model_again_does_not_recompile():
    """The module rules' global hooks come back under the same ids at every explanation
    (torch.compile guards those ids: new ones made every call recompile, 7 s on a CPU ResNet18)."""
    torch.manual_seed(1)
    module = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, depth=1, num_classes=5).eval()
    fast = spmm.load(module, modality="image", size=32).compile("aot_eager")
    assert fast.rules.module_rules, "this model must use module rules (their hooks are what is checked)"
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    first = fast.explain(x, target=3).attributions
    with torch._dynamo.config.patch(error_on_recompile=True):
        for _ in range(2):
            torch.testing.assert_close(fast.explain(x, target=3).attributions, first)


def test_compiled_bert_matches_the_eager_pullback():
    torch.manual_seed(2)
    config = BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=16, num_labels=3, attn_implementation="sdpa",
    )
    model = _Embeds(BertForSequenceClassification(config).eval())
    x = torch.randn(2, 7, 32)
    eager = spmm.explain(model, x, 1).attributions
    compiled = spmm.explain(model, x, 1, compile="aot_eager").attributions
    assert _relative(compiled, eager) <= 1e-4
    assert _relative(compiled, spmm.explain(model, x, 1, "gradient").attributions) > 0.05


class _DirectRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(4, 8), nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.relu_(self.first(x)))


HIDDEN = [
    ("torch.relu_", _DirectRelu, "torch.relu_"),
    ("nn.Hardswish", lambda: nn.Sequential(nn.Linear(4, 8), nn.Hardswish(), nn.Linear(8, 2)), "hardswish"),
    ("F.hardswish", lambda: nn.Sequential(nn.Linear(4, 8), _Lambda(F.hardswish), nn.Linear(8, 2)), "hardswish"),
]


class _Lambda(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


@pytest.mark.parametrize("name,build,op", HIDDEN, ids=[c[0] for c in HIDDEN])
@pytest.mark.parametrize("how", ["compile=", "torch.compile(model)", "model.compile()"])
def test_ops_a_compiled_graph_hides_from_the_rules_are_refused(name, build, op, how):
    """torch.compile does not offer these to the mode (the graph would hold the plain gradient):
    refused before anything is compiled, in one line."""
    model = build().eval()
    x = torch.randn(2, 4)
    if how == "torch.compile(model)":
        model = torch.compile(model, backend="aot_eager")
    elif how == "model.compile()":
        model.compile(backend="aot_eager")
    with pytest.raises(SpmmInputError, match=f"torch.compile hides .*{op}.* from the pullback rules") as error:
        spmm.explain(model, x, 0, compile="aot_eager" if how == "compile=" else False)
    assert "\n" not in str(error.value)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 0


def test_the_same_ops_are_explained_eagerly():
    model = _DirectRelu().double().eval()
    x = torch.randn(3, 4, dtype=torch.float64)
    w1, b1, w2 = model.first.weight.detach(), model.first.bias.detach(), model.second.weight.detach()
    expected = (w2[1] * torch.special.ndtr((x @ w1.T + b1) / 0.6)) @ w1
    torch.testing.assert_close(spmm.explain(model, x, 1).attributions, expected)


@pytest.mark.parametrize("value", [1, "", None, 0.5])
def test_compile_takes_a_flag_or_a_backend_name(value):
    with pytest.raises(SpmmParameterError, match="compile must be True, False or a torch.compile backend name"):
        spmm.explain(_DirectRelu(), torch.randn(1, 4), 0, compile=value)
