"""Methods against closed forms on models whose answers are known."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spmm


class Linear(nn.Module):
    """f(x) = W·flatten(x) + b: every gradient method's answer is known in closed form."""

    def __init__(self, features=12, classes=4):
        super().__init__()
        self.fc = nn.Linear(features, classes).double()

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.fixture
def linear():
    return Linear().eval()


@pytest.fixture
def x():
    return torch.rand(3, 3, 2, 2, dtype=torch.float64) * 2 - 1


def _weight_rows(model, targets, x):
    return model.fc.weight.detach()[targets].view_as(x)


@pytest.mark.parametrize(
    "method,params",
    [
        ("gradient", {}), ("soft_pullback", {}),
        ("smoothgrad", {"samples": 8}), ("smooth_pullback", {"samples": 8}),
        ("fusiongrad", {"model_samples": 2, "input_samples": 2, "weight_noise": 0.0}),
        ("fusion_pullback", {"model_samples": 2, "input_samples": 2, "weight_noise": 0.0}),
    ],
)
def test_gradient_methods_on_a_linear_model_give_the_weights(linear, x, method, params):
    targets = [0, 3, 1]
    e = spmm.explain(linear, x, targets, method, seed=0, **params)
    torch.testing.assert_close(e.attributions, _weight_rows(linear, targets, x))


@pytest.mark.parametrize("method", ["integrated_gradients", "integrated_pullbacks"])
def test_integrated_methods_on_a_linear_model(linear, x, method):
    targets = [2, 2, 0]
    e = spmm.explain(linear, x, targets, method)
    torch.testing.assert_close(e.attributions, x * _weight_rows(linear, targets, x))


class ReluMlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.relu1, self.b, self.relu2, self.c = (
            nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)
        )

    def forward(self, x):
        return self.c(self.relu2(self.b(self.relu1(self.a(x)))))


@pytest.mark.parametrize("method", ["deeplift", "pb_deeplift", "integrated_gradients"])
def test_completeness_sum_of_attributions_is_the_score_difference(method):
    """DeepLift (rescale) and IG satisfy Σ attr = f(x) − f(0) on ReLU MLPs."""
    torch.manual_seed(2)
    model = ReluMlp().double().eval()
    x = torch.randn(4, 6, dtype=torch.float64)
    e = spmm.explain(model, x, [0, 1, 2, 0], method, **({"steps": 300} if "integrated" in method else {}))
    with torch.no_grad():
        gap = model(x)[torch.arange(4), [0, 1, 2, 0]] - model(torch.zeros_like(x))[torch.arange(4), [0, 1, 2, 0]]
    torch.testing.assert_close(e.attributions.sum(1), gap, rtol=1e-3, atol=1e-4)


def test_integrated_pullbacks_differs_from_integrated_gradients_on_relu_nets():
    torch.manual_seed(2)
    model = ReluMlp().double().eval()
    x = torch.randn(4, 6, dtype=torch.float64)
    ig = spmm.explain(model, x, 1, "integrated_gradients").attributions
    ip = spmm.explain(model, x, 1, "integrated_pullbacks").attributions
    assert not torch.allclose(ig, ip)


def test_soft_pullback_closed_form_on_relu_mlp():
    torch.manual_seed(5)
    model = ReluMlp().double().eval()
    x = torch.randn(1, 6, dtype=torch.float64)
    e = spmm.explain(model, x, 2, "soft_pullback", temperatures={"relu": 0.4})
    h1 = model.a(x)
    h2 = model.b(F.relu(h1))
    gate = lambda h: torch.diag(torch.special.ndtr(h[0] / 0.4))  # noqa: E731
    expected = model.c.weight[2] @ gate(h2) @ model.b.weight @ gate(h1) @ model.a.weight
    torch.testing.assert_close(e.attributions[0], expected.detach())


def test_gradient_matches_finite_differences():
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2)).double().eval()
    x = torch.randn(1, 5, dtype=torch.float64)
    e = spmm.explain(model, x, 1, "gradient")
    eps = 1e-6
    fd = torch.stack([
        (model(x + eps * torch.eye(5, dtype=torch.float64)[i]) - model(x - eps * torch.eye(5, dtype=torch.float64)[i]))[0, 1]
        / (2 * eps)
        for i in range(5)
    ])
    torch.testing.assert_close(e.attributions[0], fd.detach(), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("method", ["pullback_ascent", "gradient_ascent"])
def test_ascent_on_a_linear_model_moves_along_the_weight(linear, method):
    x = torch.zeros(2, 3, 2, 2, dtype=torch.float64)
    e = spmm.explain(linear, x, [1, 2], method, step_size=0.1, steps=3)
    w = _weight_rows(linear, [1, 2], x)
    direction = w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    torch.testing.assert_close(e.attributions, 0.3 * direction)
    assert e.extras["trajectory"].shape == (4, 2, 3, 2, 2)
    scores = e.extras["step_scores"]
    assert scores.shape == (4, 2) and (scores.diff(dim=0) > 0).all()


def test_ascent_clipping(linear):
    x = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    every = spmm.explain(linear, x, 1, "pullback_ascent", step_size=20.0, steps=3)
    assert every.extras["trajectory"].abs().max() <= 1.0
    last = spmm.explain(linear, x, 1, "pullback_ascent", step_size=2.0, steps=3, clip="last")
    assert last.extras["trajectory"][:-1].abs().max() > 1.0 >= last.extras["trajectory"][-1].abs().max()
    free = spmm.explain(linear, x, 1, "pullback_ascent", step_size=20.0, steps=2, clip="none")
    torch.testing.assert_close(free.attributions.flatten(1).norm(dim=1), torch.tensor([40.0], dtype=torch.float64))


def test_gradient_shap_expected_completeness(linear):
    """On a linear model GradientShap's attributions sum to f(x) − f(baseline) for each draw, so the
    mean over draws is f(x) − mean f(b)."""
    x = torch.rand(2, 3, 2, 2, dtype=torch.float64)
    baselines = torch.rand(5, 3, 2, 2, dtype=torch.float64)
    e = spmm.explain(linear, x, [0, 1], "gradient_shap", samples=400, baselines=baselines, seed=0)
    with torch.no_grad():
        f_x = linear(x)[torch.arange(2), [0, 1]]
        f_b = linear(baselines)[:, [0, 1]].mean(0)
    torch.testing.assert_close(e.attributions.flatten(1).sum(1), f_x - f_b, rtol=0.05, atol=0.05)


def test_guided_gradcam_runs_on_a_cnn_layer():
    cnn = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    for method in ("guided_gradcam", "guided_pb_cam"):
        e = spmm.explain(cnn, x, [0, 2], method, layer=cnn[2])
        assert e.attributions.shape == x.shape and torch.isfinite(e.attributions).all()
    with pytest.raises(spmm.SpmmInputError, match="knows no Grad-CAM layer.*pass layer="):
        spmm.explain(cnn, x, 0, "guided_gradcam")


def test_fusiongrad_leaves_the_model_untouched():
    cnn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3)).eval()
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    spmm.explain(cnn, torch.rand(1, 3, 8, 8), 1, "fusion_pullback", model_samples=2, input_samples=1)
    for key, value in cnn.state_dict().items():
        assert torch.equal(value, before[key])


def test_batched_equals_one_by_one_and_targets_forms_agree():
    torch.manual_seed(7)
    model = ReluMlp().eval()
    x = torch.randn(3, 6)
    batched = spmm.explain(model, x, [0, 2, 1]).attributions
    singles = torch.cat([spmm.explain(model, x[i : i + 1], t).attributions for i, t in enumerate([0, 2, 1])])
    torch.testing.assert_close(batched, singles)
    tensor_target = spmm.explain(model, x, torch.tensor([0, 2, 1])).attributions
    callable_target = spmm.explain(model, x, lambda out: out[:, 1]).attributions
    int_target = spmm.explain(model, x, 1).attributions
    torch.testing.assert_close(tensor_target, batched)
    torch.testing.assert_close(callable_target, int_target)


def test_explanation_carries_its_context(linear, x):
    e = spmm.explain(linear, x, [0, 1, 2], "smoothgrad", samples=4, seed=1)
    assert e.method == "smoothgrad" and e.params["samples"] == 4 and e.params["noise"] == 0.15
    torch.testing.assert_close(e.output, linear(x).detach())
    torch.testing.assert_close(e.scores, linear(x).detach()[torch.arange(3), [0, 1, 2]])
    again = spmm.explain(linear, x, [0, 1, 2], "smoothgrad", samples=4, seed=1)
    assert torch.equal(e.attributions, again.attributions)


def test_quantus_explain_func_returns_numpy_like_inputs():
    torch.manual_seed(8)
    model = ReluMlp().eval()
    x = np.random.default_rng(0).normal(size=(2, 6)).astype(np.float32)
    out = spmm.quantus_explain_func(model, x, np.array([0, 2]), method="soft_pullback")
    assert isinstance(out, np.ndarray) and out.shape == x.shape
    expected = spmm.explain(model, torch.from_numpy(x), [0, 2]).numpy()
    np.testing.assert_allclose(out, expected)


def test_every_method_is_listed_and_named_as_the_api_promises():
    expected = {
        "soft_pullback", "pullback_ascent", "smooth_pullback", "fusion_pullback", "integrated_pullbacks",
        "pullback_shap", "pb_deeplift", "guided_pb_cam", "gradient", "gradient_ascent", "smoothgrad", "fusiongrad",
        "gradient_shap", "integrated_gradients", "deeplift", "guided_gradcam",
    }
    assert set(spmm.list_methods()) == expected


class ReusedAndFunctionalRelu(nn.Module):
    """One ReLU module used twice plus a functional relu and an in-place one: Captum's
    module-hook DeepLift refuses this; the op-level rescale rule must not."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c, self.d = nn.Linear(6, 12), nn.Linear(12, 12), nn.Linear(12, 12), nn.Linear(12, 3)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        h = self.relu(self.a(x))
        h = self.relu(self.b(h))
        h = F.relu(self.c(h)) + h
        return self.d(h)


def test_deeplift_handles_reused_and_functional_activations():
    torch.manual_seed(9)
    model = ReusedAndFunctionalRelu().double().eval()
    x = torch.randn(3, 6, dtype=torch.float64)
    baseline = torch.randn(1, 6, dtype=torch.float64)
    e = spmm.explain(model, x, [0, 1, 2], "deeplift", baseline=baseline)
    with torch.no_grad():
        rows = torch.arange(3)
        gap = model(x)[rows, [0, 1, 2]] - model(baseline.expand(3, 6))[rows, [0, 1, 2]]
    torch.testing.assert_close(e.attributions.sum(1), gap)
    grad_times_delta = spmm.explain(model, x, [0, 1, 2], "gradient").attributions * (x - baseline)
    assert not torch.allclose(e.attributions, grad_times_delta)


class ModuleGeluThenRelu(nn.Module):
    """x -> a -> a GELU module (its F.gelu inside; ruled as a whole by a module rule) -> b -> ReLU -> c."""

    def __init__(self):
        super().__init__()
        self.a, self.act, self.b, self.c = nn.Linear(5, 7), nn.GELU(), nn.Linear(7, 6), nn.Linear(6, 2)

    def forward(self, x):
        return self.c(F.relu(self.b(self.act(self.a(x)))))


def test_pb_deeplift_rescales_the_activations_outside_modules_ruled_as_a_whole():
    """A module rule (here the GELU gate on nn.GELU, as the HF rules give GELU-like modules) runs
    the module's forward without autograd, so its inner F.gelu is not an explained activation:
    the reference pass must skip it too.  Closed form: attributions = x ⊙ (c.W · diag(m) · b.W ·
    diag(Φ(h₁)) · a.W)[target], m = (relu(h₂) − relu(h₂⁰)) / (h₂ − h₂⁰) against the zero baseline."""
    torch.manual_seed(11)
    model = ModuleGeluThenRelu().double().eval()
    x = torch.randn(2, 5, dtype=torch.float64)
    e = spmm.explain(model, x, [0, 1], "pb_deeplift", module_rules={nn.GELU: spmm.gate_module_rule("gelu")})
    with torch.no_grad():
        h1 = model.a(x)
        h2, h2_reference = model.b(F.gelu(h1)), model.b(F.gelu(model.a(torch.zeros(1, 5, dtype=torch.float64))))
        multiplier = (F.relu(h2) - F.relu(h2_reference)) / (h2 - h2_reference)
        for row, target in enumerate([0, 1]):
            jacobian = (model.c.weight[target] * multiplier[row]) @ model.b.weight
            expected = x[row] * ((jacobian * torch.special.ndtr(h1[row])) @ model.a.weight)
            torch.testing.assert_close(e.attributions[row], expected)


class PathOnValues(nn.Module):
    """A ReLU net whose path depends on its input's values: on an all-zero input it runs ``extra``
    ("more": one more ReLU first, "shape": its first ReLU on a widened activation) -- as Idefics3
    drops image views that are all 0."""

    def __init__(self, extra):
        super().__init__()
        self.extra, self.a, self.b = extra, nn.Linear(4, 6), nn.Linear(6, 2)

    def forward(self, x):
        h = self.a(x)
        if (x == 0).all() and self.extra == "more":
            h = F.relu(h) - 1
        if (x == 0).all() and self.extra == "shape":
            return self.b(F.relu(torch.cat([h, h], 0))[: len(h)])
        return self.b(F.relu(h))


@pytest.mark.parametrize("method", ["deeplift", "pb_deeplift"])
@pytest.mark.parametrize("extra,says", [("more", "ran 1 activations on the input, 2 on the baseline"),
                                        ("shape", r"the shape \(2, 6\) on the input, \(4, 6\) on the baseline")])
def test_deeplift_refuses_a_baseline_on_which_the_model_takes_another_path(method, extra, says):
    """The reference pass runs another number of activations, or activations of another shape, than
    the explained pass: no activation can be paired with its reference, a one-line error says so
    and asks for another baseline; a baseline on the input's path runs."""
    torch.manual_seed(12)
    model = PathOnValues(extra).double().eval()
    x = torch.randn(2, 4, dtype=torch.float64)
    with pytest.raises(spmm.SpmmInputError, match=says) as error:
        spmm.explain(model, x, [0, 1], method)
    assert "\n" not in str(error.value) and str(error.value).startswith(f"{method}:") and "baseline=" in str(error.value)
    e = spmm.explain(model, x, [0, 1], method, baseline=0.5)
    assert torch.isfinite(e.attributions).all()


def test_deeplift_agrees_with_captum_where_captum_applies():
    from captum.attr import DeepLift

    torch.manual_seed(10)
    model = ReluMlp().double().eval()
    x = torch.randn(4, 6, dtype=torch.float64)
    ours = spmm.explain(model, x, [0, 1, 2, 1], "deeplift").attributions
    theirs = DeepLift(model).attribute(x.clone().requires_grad_(True), baselines=0.0, target=torch.tensor([0, 1, 2, 1]))
    torch.testing.assert_close(ours, theirs.detach())


class LinearConvNet(nn.Module):
    """Conv, eval batch norm, average pooling, a residual add and a linear head: no nonlinearity."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.conv2, self.head = nn.Conv2d(6, 6, 3, padding=1), nn.Linear(6, 4)

    def forward(self, x):
        h = self.bn(self.conv1(x))
        h = F.avg_pool2d(h + self.conv2(h), 2)
        return self.head(h.mean((2, 3)))


def test_pullback_equals_gradient_without_nonlinearities():
    torch.manual_seed(11)
    model = LinearConvNet().double().eval()
    model.bn.running_mean.normal_()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    sp = spmm.explain(model, x, [1, 3], "soft_pullback").attributions
    grad = spmm.explain(model, x, [1, 3], "gradient").attributions
    torch.testing.assert_close(sp, grad, rtol=0, atol=0)


@pytest.mark.parametrize("method", ["smoothgrad", "gradient_shap"])
def test_sampling_methods_agree_with_captum_in_expectation(method):
    """Our draws are not Captum's, so compare the Monte Carlo means: 20000 samples each on a tanh MLP,
    whose expected attributions both estimate (Captum's SmoothGrad and GradientShap definitions).
    Seen: relative differences 0.001–0.022 over three models (Monte Carlo error ≈ 0.01 each)."""
    from captum.attr import GradientShap, NoiseTunnel, Saliency

    torch.manual_seed(4)
    np.random.seed(4)  # Captum draws its baseline choices from NumPy
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).double().eval()
    x = torch.randn(2, 6, dtype=torch.float64)
    baselines = torch.randn(3, 6, dtype=torch.float64)

    def score(inputs):
        return model(inputs)[:, 1]

    if method == "smoothgrad":
        ours = spmm.explain(model, x, 1, method, samples=20000, noise=0.5, batch_size=None, seed=0).attributions
        theirs = NoiseTunnel(Saliency(score)).attribute(x, nt_type="smoothgrad", nt_samples=20000, stdevs=0.5, abs=False)
    else:
        ours = spmm.explain(model, x, 1, method, samples=20000, baselines=baselines, noise=0.3, seed=0).attributions
        theirs = GradientShap(score).attribute(x, baselines=baselines, n_samples=20000, stdevs=0.3)
    error = ((ours - theirs).norm(dim=1) / theirs.norm(dim=1)).max().item()
    assert error < 0.05, f"{method}: relative difference {error:.3f} between the two Monte Carlo means"


class SharedLinear(nn.Module):
    """One Linear held under two names (a wrapper keeping it twice)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 3)
        self.inner = nn.Sequential(self.head)

    def forward(self, x):
        return self.head(x)


@pytest.mark.parametrize("method", ["fusiongrad", "fusion_pullback"])
def test_fusiongrad_refuses_a_module_held_twice_and_leaves_the_weights(method):
    """torch.func.functional_call leaves a module reachable by two paths with the perturbed weights:
    FusionGrad refuses such a model in one line before perturbing anything."""
    torch.manual_seed(12)
    model = SharedLinear().eval()
    weights = {name: value.clone() for name, value in model.state_dict().items()}
    with pytest.raises(spmm.SpmmInputError, match="holds one Linear twice \\(head and inner.0\\)") as error:
        spmm.explain(model, torch.randn(2, 4), 0, method, model_samples=2, input_samples=2)
    assert "\n" not in str(error.value)
    assert all(torch.equal(value, weights[name]) for name, value in model.state_dict().items())
