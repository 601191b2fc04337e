"""What every attribution method gets: the model's score function, with or without the SP rules."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import Tensor, nn
from torch.overrides import _len_torch_function_stack, _pop_mode, _push_mode

from spmm.errors import SpmmInputError
from spmm.graph_ops import exact_gradient_ops
from spmm.metrics.draws import SampleStream, sample_streams
from spmm.mode import PullbackMode, _active_modes, current_mode
from spmm.targets import TargetFn, target_for_rows, target_scores
from spmm.temperatures import Temperatures


class MethodContext:
    """The model and target of one :func:`spmm.explain` call.

    ``pullback`` says whether forward passes run inside a :class:`PullbackMode`;
    the target callable itself always runs outside it.  ``exact_gradient_ops``: ``{op: count}`` of
    the nonlinear ops no rule replaced, read off the graph of the first differentiable pullback score
    (None until one ran).
    """

    def __init__(
        self,
        model: Callable[[Tensor], Any],
        target_fn: TargetFn,
        *,
        pullback: bool,
        temperatures: Temperatures,
        module_rules: Mapping | None = None,
        seed: int | None = None,
    ) -> None:
        self.model = model
        self.target_fn = target_fn
        self.pullback = pullback
        self.temperatures = temperatures
        self.module_rules = module_rules
        self.seed = seed
        self.exact_gradient_ops: dict[str, int] | None = None

    def sample_streams(self, name: str, inputs: Tensor) -> list[SampleStream]:
        """One random stream per sample of inputs (B, ...) for the method family ``name``, keyed by
        (seed, the sample's content): a sample draws the same alone, in any batch and at any
        position (:mod:`spmm.metrics.draws`).  A model with ``sample_ids(inputs) -> ids`` names the
        content itself (a padded text: its tokens without the padding).  Without a seed, one is
        drawn from torch's global generator, so ``torch.manual_seed`` also makes a call reproducible."""
        ids = getattr(self.model, "sample_ids", None)
        return sample_streams(self.call_seed(), name, inputs, ids(inputs) if callable(ids) else None)

    def call_seed(self) -> int:
        """The call's seed, or without one a seed drawn from torch's global generator."""
        return self.seed if self.seed is not None else int(torch.randint(2**32, ()).item())

    def rules(self) -> contextlib.AbstractContextManager:
        """The pullback mode for this call or, for plain gradients, a context in which every
        pullback mode the caller may have entered is suspended."""
        if self.pullback:
            return PullbackMode(self.temperatures, self.module_rules)
        return pullback_modes_suspended()

    def output(self, x: Tensor) -> Any:
        """The model output on x (B, ...), under the rules when ``pullback``."""
        with self.rules():
            return self.model(x)

    def score(
        self, x: Tensor, sample_index: Tensor | None = None, model: Callable[[Tensor], Any] | None = None
    ) -> Tensor:
        """Target score per row of x: (N,).  ``sample_index`` (N,) names the original sample of
        each row when a method repeats samples (Captum passes it as an additional forward arg).
        A model that depends on the sample (e.g. through attention masks) implements
        ``take(sample_index)`` like a target does."""
        model = model or self.model
        if sample_index is not None and hasattr(model, "take"):
            model = model.take(sample_index)
        with self.rules():
            output = model(x)
        scores = target_scores(target_for_rows(self.target_fn, sample_index), output, x.shape[0])
        if self.pullback and self.exact_gradient_ops is None and scores.requires_grad and x.requires_grad:
            self.exact_gradient_ops = exact_gradient_ops(scores, x)
        return scores

    def gradient(
        self, x: Tensor, model: Callable[[Tensor], Any] | None = None, sample_index: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """(input gradient of the summed scores, scores): ((B, ...), (B,)); ``sample_index`` as in :meth:`score`."""
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            scores = self.score(x, sample_index, model)
            if not scores.requires_grad:
                raise no_path_error(self.pullback)
            (grad,) = torch.autograd.grad(scores.sum(), x, allow_unused=True)
        if grad is None:
            raise no_path_error(self.pullback)
        return grad, scores.detach()

    def score_module(self) -> nn.Module:
        """An ``nn.Module`` x -> (B,) scores, for Captum methods that hook modules."""
        return ScoreModule(self)


class ScoreModule(nn.Module):
    """Wraps a :class:`MethodContext` so that its model's submodules stay visible to hooks."""

    def __init__(self, context: MethodContext) -> None:
        super().__init__()
        self.context = context
        if isinstance(context.model, nn.Module):
            self.model = context.model

    def forward(self, x: Tensor, sample_index: Tensor | None = None) -> Tensor:
        return self.context.score(x, sample_index)


@contextlib.contextmanager
def pullback_modes_suspended() -> Iterator[None]:
    """Run without the pullback modes active in this thread (a baseline called inside
    ``with spmm.pullback_mode():``); other torch function modes stay active.  The mode stack
    is restored on leaving."""
    if current_mode() is None:
        yield
        return
    stack = [_pop_mode() for _ in range(_len_torch_function_stack())][::-1]
    active = _active_modes()
    entered = list(active)
    active.clear()
    try:
        for mode in stack:
            if not isinstance(mode, PullbackMode):
                _push_mode(mode)
        yield
    finally:
        while _len_torch_function_stack():
            _pop_mode()
        for mode in stack:
            _push_mode(mode)
        active[:] = entered


def check_model_tensors(model: Any, autograd: bool = True) -> None:
    """Refuse a module whose parameters or buffers are on the meta device (never loaded) or, when
    ``autograd`` is needed, were made under ``torch.inference_mode()`` (inference tensors)."""
    if not isinstance(model, nn.Module):
        return
    tensors = [*model.named_parameters(), *model.named_buffers()]
    meta = [name for name, t in tensors if t.is_meta]
    if meta:
        raise SpmmInputError(
            f"the model's weights are on the meta device, without values ({meta[0]}, {len(meta)} in all): load them "
            "first (e.g. model.to_empty(device='cpu') then load_state_dict)"
        )
    frozen = [name for name, t in tensors if autograd and t.is_inference()]
    if frozen:
        raise SpmmInputError(
            f"the model's weights were made under torch.inference_mode() ({frozen[0]}, {len(frozen)} in all) and "
            "cannot be used by autograd: build or load the model outside inference_mode (torch.no_grad() is fine)"
        )


def no_path_error(pullback: bool) -> SpmmInputError:
    hint = (
        " Under the pullback rules a softmax counts as attention weights (a constant), so a model that "
        "ends in softmax has no path: explain its logits instead."
        if pullback
        else ""
    )
    return SpmmInputError("the model output does not depend on the input (no differentiable path)." + hint)
