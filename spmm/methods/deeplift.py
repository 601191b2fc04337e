"""DeepLift's rescale rule at the op level, so functional activations and modules used several
times (torchvision ResNets reuse ``relu``) are handled, unlike Captum's module hooks.

A reference pass on the baseline records the input of every pointwise activation in call
order; the explained pass then gives each activation the multiplier
(f(x) − f(x₀)) / (x − x₀), falling back to its local gradient where x ≈ x₀.  In the
pullback version every other nonlinear op (max-pool, attention, norms) keeps its SP rule, and so
do activations inside a module the rule set rules as a whole (the GELU-like activation modules of
Hugging Face models): such a module runs its own forward without autograd and its rule gives the
gradient.  Both passes therefore run alike, with autograd, and count only the activations called
with autograd on, so that the i-th activation of the explained pass meets its own reference.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from spmm.errors import SpmmInputError
from spmm.methods.context import MethodContext
from spmm.methods.parameters import real_or_tensor
from spmm.methods.registry import register_method
from spmm.rules.registry import OP_RULES, INPLACE_ALIASES


def _is_activation(func: Callable) -> bool:
    rule = OP_RULES.get(func)
    return rule is not None and rule.gate


def _is_explained_activation(func: Callable) -> bool:
    """A pointwise activation whose gradient the explained pass takes (called with autograd on)."""
    return _is_activation(func) and torch.is_grad_enabled()


def _activation_input(args: tuple, kwargs: dict) -> Tensor:
    return args[0] if args else kwargs["input"]


class _ReferenceRecorder(TorchFunctionMode):
    """Records (detached) the input of each explained pointwise activation, in call order."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _is_explained_activation(func):
            self.inputs.append(_activation_input(args, kwargs).detach().clone())
        return func(*args, **kwargs)


class _Rescale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, reference, call, inplace):
        x_saved = x.detach().clone() if inplace else x.detach()
        with torch.no_grad():
            ctx.save_for_backward(x_saved, reference)
        ctx.call = call
        out = call(x)
        if inplace:
            ctx.mark_dirty(x)
            return x
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, reference = ctx.saved_tensors
        with torch.no_grad():
            delta_in = x - reference
            delta_out = ctx.call(x.clone()) - ctx.call(reference.clone())
        with torch.enable_grad():
            local_x = x.clone().requires_grad_(True)
            (local,) = torch.autograd.grad(ctx.call(local_x.clone()), local_x, grad_out)
        close = delta_in.abs() < 1e-6
        rescaled = grad_out * delta_out / torch.where(close, torch.ones_like(delta_in), delta_in)
        return torch.where(close, local, rescaled), None, None, None


class _RescaleMode(TorchFunctionMode):
    """Gives the i-th activation call the rescale multiplier against ``references[i]``."""

    def __init__(self, references: list[Tensor]) -> None:
        super().__init__()
        self.references = references
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not _is_explained_activation(func):
            return func(*args, **kwargs)
        if self.calls >= len(self.references):
            raise SpmmInputError("deeplift: the model ran more activations on the input than on the baseline")
        reference = self.references[self.calls]
        self.calls += 1
        x = _activation_input(args, kwargs)
        if reference.shape != x.shape:
            raise SpmmInputError("deeplift: the model's activations differ in shape between input and baseline")
        inplace = func in INPLACE_ALIASES or bool(kwargs.get("inplace", False))
        rest, options = args[1:], {k: v for k, v in kwargs.items() if k not in ("input", "inplace")}

        def call(t: Tensor) -> Tensor:
            return func(t, *rest, **options, **({"inplace": True} if inplace and "inplace" in kwargs else {}))

        with torch._C.DisableTorchFunction():
            return _Rescale.apply(x, reference, call, inplace)


@register_method("deeplift", pullback=False, summary="DeepLift rescale rule at the op level",
                 checks={"baseline": real_or_tensor}, baseline=0.0)
@register_method("pb_deeplift", pullback=True, summary="DeepLift with the SP rules on the other nonlinear ops",
                 checks={"baseline": real_or_tensor}, baseline=0.0)
def deeplift(context: MethodContext, inputs: Tensor, baseline: float | Tensor):
    """(x − x₀) ⊙ the DeepLift multipliers; Σ attributions = f(x) − f(x₀) when every nonlinearity
    is a pointwise activation."""
    reference_input = torch.as_tensor(baseline, dtype=inputs.dtype, device=inputs.device).expand_as(inputs)
    recorder = _ReferenceRecorder()
    with torch.enable_grad(), context.rules(), recorder:  # as the explained pass runs (module docstring)
        context.model(reference_input.detach().requires_grad_(True))
    rescale = _RescaleMode(recorder.inputs)
    model = context.model

    def rescaled_model(x: Tensor):
        with rescale:
            rescale.calls = 0
            return model(x)

    grad, _ = context.gradient(inputs, model=rescaled_model)
    return (inputs - reference_input) * grad, {}
