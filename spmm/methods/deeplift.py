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
A model whose path depends on its input's values (it runs another number of activations, or
activations of other shapes, on the baseline) has no such pairing: a one-line error asks for
another baseline.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from spmm.errors import SpmmInputError
from spmm.methods.context import MethodContext
from spmm.methods.parameters import real_or_tensor
from spmm.methods.registry import register_method
from spmm.rules.registry import INPLACE_ALIASES, OP_RULES


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


def path_error(method: str, difference: str) -> SpmmInputError:
    """The one-line error for a model whose explained pass and reference pass take different paths."""
    return SpmmInputError(f"{method}: the model {difference}, so its path depends on the input's values and the "
                          "activations have no reference to pair with; give another baseline= (e.g. baseline=-1.0)")


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
    """Gives the i-th activation call the rescale multiplier against ``references[i]`` (``method``:
    the method's name, for its errors)."""

    def __init__(self, references: list[Tensor], method: str) -> None:
        super().__init__()
        self.references, self.method = references, method
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not _is_explained_activation(func):
            return func(*args, **kwargs)
        if self.calls >= len(self.references):
            raise path_error(self.method,
                             f"ran more activations on the input than the {len(self.references)} on the baseline")
        reference = self.references[self.calls]
        self.calls += 1
        x = _activation_input(args, kwargs)
        if reference.shape != x.shape:
            raise path_error(self.method, f"gave activation {self.calls} the shape {tuple(x.shape)} on the input, "
                             f"{tuple(reference.shape)} on the baseline")
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
    rescale = _RescaleMode(recorder.inputs, "pb_deeplift" if context.pullback else "deeplift")
    model = context.model

    def rescaled_model(x: Tensor):
        with rescale:
            rescale.calls = 0
            out = model(x)
        if rescale.calls != len(rescale.references):
            raise path_error(rescale.method,
                             f"ran {rescale.calls} activations on the input, {len(rescale.references)} on the baseline")
        return out

    grad, _ = context.gradient(inputs, model=rescaled_model)
    return (inputs - reference_input) * grad, {}
