"""The pieces of the synthetic-shapes studies (examples/shapes_*.py) that carry numbers: the
per-layer temperature mode, the equal-norm rescaling, the dilation and the class draws."""

import torch
from torch import nn

import spmm
from examples.shapes_counterfactual import dilate, other_classes, scale_to
from examples.shapes_temperature import LayerTemperatures, soft_pullback
from spmm.ruleset import RuleSet


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(inplace=True),
        nn.Flatten(), nn.Linear(4 * 4 * 4, 3),
    ).eval()


def test_a_constant_layer_schedule_is_the_global_temperature_and_zero_is_the_gradient():
    model, rules = _cnn(), RuleSet()
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    targets = torch.tensor([0, 2])
    for t in (0.25, 1.5):
        expected = spmm.explain(model, x, targets, "soft_pullback", rules=rules.updated({"relu": t})).attributions
        got = soft_pullback(model, x, targets, LayerTemperatures(rules, "relu", [t, t]))
        torch.testing.assert_close(got, expected)
    hard = soft_pullback(model, x, targets, LayerTemperatures(rules.updated({"max_pool": 0.0}), "relu", [0.0, 0.0]))
    torch.testing.assert_close(hard, spmm.explain(model, x, targets, "gradient").attributions)


def test_the_schedule_reaches_each_layer_and_spreads_are_recorded_per_call():
    model, rules = _cnn(), RuleSet()
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    targets = torch.tensor([1, 1])
    # only the second ReLU softened equals a hand-built gate: exact first ReLU, Φ(z/T) on the second
    mixed = soft_pullback(model, x, targets, LayerTemperatures(rules, "relu", [0.0, 0.7]))
    assert not torch.allclose(mixed, soft_pullback(model, x, targets, LayerTemperatures(rules, "relu", [0.7, 0.7])))
    xr = x.clone().requires_grad_(True)
    r1 = model[0](xr).relu()
    h1 = model[2](r1)
    with spmm.pullback_mode(max_pool=0.3):
        h1_soft = model[2](r1)
    z2 = model[3](h1_soft)
    gate = torch.distributions.Normal(0.0, 1.0).cdf(z2.detach() / 0.7)
    logits = model[6](model[5](z2.relu().detach() + (z2 - z2.detach()) * gate))
    # forward of the hand-built version: h1_soft equals h1, and the surrogate equals relu(z2)
    torch.testing.assert_close(h1_soft, h1)
    expected, = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), xr)
    torch.testing.assert_close(mixed, expected)
    recorder = LayerTemperatures(rules, "relu")
    soft_pullback(model, x, targets, recorder)
    with torch.no_grad():
        first = model[0](x)
        second = model[3](model[2](first.relu()))
    torch.testing.assert_close(torch.tensor(recorder.spreads), torch.stack([first.double().std(), second.double().std()]).float(),
                               rtol=1e-5, atol=0)


def test_equal_norm_rescaling_and_dilation():
    delta = torch.tensor([[3.0, 4.0], [0.6, 0.8]]).view(2, 2, 1, 1)
    scaled = scale_to(delta, torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(scaled.flatten(1).norm(dim=1), torch.tensor([1.0, 1.0]))  # never scaled up
    mask = torch.zeros(1, 7, 7, dtype=torch.bool)
    mask[0, 3, 3] = True
    grown = dilate(mask, 2)
    assert grown.sum() == 25 and grown[0, 1:6, 1:6].all()
    assert torch.equal(dilate(mask, 0), mask)


def test_other_classes_differ_from_the_label_and_follow_the_scene_index():
    labels = torch.arange(6).repeat(5)
    towards = other_classes(labels, 6, seed=3, first=10)
    assert (towards != labels).all() and towards.min() >= 0 and towards.max() < 6
    assert torch.equal(other_classes(labels[4:], 6, seed=3, first=14), towards[4:])
    assert len(set(((towards - labels) % 6).tolist())) > 1
