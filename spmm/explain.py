"""``spmm.explain``: one call shape for every method."""

from __future__ import annotations

import contextlib
import numbers
import random
import warnings
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.utils._pytree as pytree
from torch import Tensor, nn

import spmm.methods.classic  # noqa: F401  (registers the classic methods)
import spmm.methods.deeplift  # noqa: F401  (registers DeepLift)
import spmm.methods.pullback  # noqa: F401  (registers the pullback methods)
from spmm.compiled import compiled, contains_compiled, eager_probe
from spmm.errors import SpmmInputError, SpmmParameterError
from spmm.explanation import Explanation
from spmm.methods.context import MethodContext, check_model_tensors
from spmm.methods.registry import check_installed, check_parameters, get_method, run_method
from spmm.ruleset import RuleSet, resolve_rules
from spmm.targets import Target, resolve_target, target_scores
from spmm.temperatures import Temperatures


def check_inputs(inputs: Any) -> None:
    """Reject what cannot be explained: non-tensors, non-float dtypes, no batch dim, NaN/Inf."""
    if not isinstance(inputs, Tensor):
        raise SpmmInputError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
    if not inputs.is_floating_point():
        raise SpmmInputError(
            f"inputs must be floating point, got dtype {inputs.dtype}; token ids are explained through their "
            "embeddings (spmm.adapters.text), images as float tensors"
        )
    if inputs.dim() < 2:
        raise SpmmInputError(f"inputs must be batched, shape (batch, ...); got shape {tuple(inputs.shape)}")
    if inputs.shape[0] == 0:
        raise SpmmInputError("inputs hold an empty batch")
    if inputs.is_meta:
        raise SpmmInputError("inputs are on the meta device (shapes without data); give tensors that hold values")
    if not torch.isfinite(inputs).all():
        bad = "NaN" if torch.isnan(inputs).any() else "Inf"
        raise SpmmInputError(f"inputs contain {bad} values")


def check_compile(compile: Any) -> None:
    """``compile`` must be True, False or the name of a ``torch.compile`` backend."""
    if compile is True or compile is False:
        return
    if not (isinstance(compile, str) and compile in torch.compiler.list_backends(exclude_tags=())):
        raise SpmmParameterError(
            f"compile must be True, False or a torch.compile backend name ({', '.join(torch.compiler.list_backends())}, "
            f"aot_eager…), got {compile!r}"
        )


def refuse_compiled(model: Any) -> None:
    """Raise for a ``torch.compile``d model or function (used where eager ops must be seen)."""
    if contains_compiled(model):
        raise SpmmInputError("compiled models are not supported here; pass the eager module (not torch.compile(model))")


def check_autograd(inputs: Tensor) -> Tensor:
    """``inputs`` (B, ...) detached and usable by autograd; refuses inside ``torch.inference_mode()``."""
    if torch.is_inference_mode_enabled():
        raise SpmmInputError("explanations need autograd, which torch.inference_mode() disables; call spmm outside it")
    inputs = inputs.detach()
    return inputs.clone() if inputs.is_inference() else inputs


def check_seed(seed: Any) -> int | None:
    """None or an integer in [0, 2**32) (NumPy's seed range)."""
    if seed is None:
        return None
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise SpmmParameterError(f"seed must be None or an integer in [0, 2**32), got {seed!r}")
    return int(seed)


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Seed torch (CPU and initialised CUDA devices), NumPy's and Python's global generators
    with ``seed``, and restore all their states on leaving.  None: a no-op."""
    if seed is None:
        yield
        return
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    numpy_state, python_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for device in cuda:
            torch.cuda.default_generators[device].manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)


def is_training(model: Any) -> bool:
    """Whether any submodule of ``model`` is in training mode."""
    return isinstance(model, nn.Module) and any(module.training for module in model.modules())


@contextlib.contextmanager
def buffers_kept(model: Any) -> Iterator[None]:
    """Restore every buffer of ``model`` (object and value) on leaving: in training mode batch
    norm updates its running statistics in each forward pass.  Train/eval flags are left as they are."""
    if not is_training(model):
        yield
        return
    saved = [
        (module, name, buffer, buffer.detach().clone())
        for module in model.modules()
        for name, buffer in module._buffers.items()
        if buffer is not None
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for module, name, buffer, value in saved:
                module._buffers[name] = buffer
                buffer.copy_(value)


TRAINING_WARNING = (
    "the model is in training mode (dropout and batch statistics make explanations random); spmm restores "
    "its buffers afterwards, but call model.eval() for deterministic explanations"
)


EXACT_GRADIENT_OPS = "exact_gradient_ops"
"""``Explanation.extras`` key: ``{op: count}`` of the nonlinear ops a pullback method's rules left
with their exact gradient (Mamba's selective scan, a custom autograd Function…); absent when none."""


def rules_owner(model: Any, module: Any, rules: RuleSet | str | None, pullback: bool = True) -> Any:
    """The ``nn.Module`` rule sets resolve their module rules in: ``module`` when given, else ``model``.
    Refuses a callable ``model`` without ``module`` when a ``pullback`` method's ``rules`` would look
    for module rules inside the model: it would find none and silently keep their ops' exact gradients."""
    if module is not None:
        if not isinstance(module, nn.Module):
            raise SpmmInputError(f"module= must be the torch.nn.Module the model runs, got {type(module).__name__}")
        return module
    if isinstance(model, nn.Module) or rules is None or not pullback:
        return model
    from spmm.ruleset import get_ruleset

    ruleset = get_ruleset(rules) if isinstance(rules, str) else rules
    if isinstance(ruleset, RuleSet) and ruleset.model_rules is not None:
        raise SpmmInputError(
            f"rule set {ruleset.name!r} finds module rules inside the model, but the model is a "
            f"{type(model).__name__}, not a torch.nn.Module: pass module=<the nn.Module it runs>"
        )
    return model


def _forward(model: Callable[[Tensor], Any], inputs: Tensor) -> Any:
    try:
        return model(inputs)
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        raise SpmmInputError(
            f"the model failed on inputs of shape {tuple(inputs.shape)} and dtype {inputs.dtype} "
            f"(wrong shape or rank?): {error}"
        ) from error


def _detach_output(output: Any) -> Any:
    if isinstance(output, Tensor):
        return output.detach()
    logits = getattr(output, "logits", None)
    if isinstance(logits, Tensor):
        return logits.detach()
    if isinstance(output, (tuple, list)):
        return type(output)(_detach_output(o) for o in output)
    return output


def explain(
    model: Callable[[Tensor], Any],
    inputs: Tensor,
    target: Target,
    method: str = "soft_pullback",
    *,
    rules: RuleSet | str | None = None,
    temperatures: Temperatures | Mapping[str, float] | None = None,
    module_rules: Mapping | None = None,
    seed: int | None = None,
    labels: Sequence[str] | None = None,
    compile: bool | str = False,
    module: nn.Module | None = None,
    **params: Any,
) -> Explanation:
    """Explain ``model``'s ``target`` score on ``inputs`` with ``method``.

    Parameters
    ----------
    model: a module or callable mapping inputs (B, ...) to an output (logits (B, C), a Hugging
        Face output with ``.logits``, or anything a callable target understands).
    inputs: (B, ...) float tensor; images in [−1, 1] by convention (SPEC §3).
    target: class index, one index per sample, ``"top1"``, a label name of ``labels``, a callable
        output -> (B,) scores (a Hugging Face ``ModelOutput`` reaches it as its ``.logits``), or a
        target with ``resolve(output, labels)`` such as :class:`spmm.TokenLabel`.
    method: see :func:`spmm.list_methods`; pullback methods use the SP rules.
    rules: the :class:`spmm.RuleSet` (or its name) the model is explained with; default: the op
        rules alone.  ``spmm.load(...)`` models carry theirs.  Methods that read a Grad-CAM layer
        get it from ``rules.cam_layer`` unless ``layer=`` is given.
    temperatures: per-rule temperature overrides on top of ``rules``, e.g. ``{"relu": 0.3}``.
    module_rules: extra module rules for this call, on top of ``rules``.
    module: the ``nn.Module`` a callable ``model`` runs (``lambda x: net(x).logits``): the rule set
        finds its module rules (RMS norms, gated MLPs…) in it, and its training mode, buffers and
        Grad-CAM layer are read from it.  A pullback method on a callable ``model`` with a rule set
        that finds module rules inside the model (``text``, ``vision``, ``audio``…) and no
        ``module`` is refused.
    labels: class names in output order, for label-name targets.
    compile: ``True`` (inductor) or a ``torch.compile`` backend name ("aot_eager"…): explain
        ``torch.compile(model)`` (made once per model and backend and reused; ``model`` itself is
        not changed).  Compiled models (``torch.compile(m)``, ``m.compile()``, or with compiled
        submodules) are explained as they are, with the same result as the eager model; a model
        calling an op that torch.compile hides from the rules is refused (:mod:`spmm.compiled`).
    seed: makes stochastic methods reproducible: torch, NumPy and Python ``random`` are seeded for
        the call and their global states restored afterwards.  Sampling methods draw per sample from
        (seed, the sample's values) (:mod:`spmm.metrics.draws`), so a sample's attributions do not
        depend on its batch or its position in it; without a seed the seed comes from torch's generator.
    params: method parameters, e.g. ``steps=5`` for ``pullback_ascent``; every value is checked
        (:class:`~spmm.errors.SpmmParameterError` stating the valid range) before any work.

    A model in training mode is explained as it is (a warning is given) and left as it was:
    its buffers, such as batch-norm running statistics, are restored.  Baselines called inside
    ``with spmm.pullback_mode():`` run without the rules.

    Returns
    -------
    Explanation with ``attributions`` of the same shape as ``inputs``.
    """
    check_compile(compile)
    spec = get_method(method)
    check_installed(spec)
    check_inputs(inputs)
    owner = rules_owner(model, module, rules, spec.pullback)
    ruleset = resolve_rules(rules, owner, temperatures, module_rules)
    params = check_parameters(spec, params)
    seed = check_seed(seed)
    check_model_tensors(model)
    inputs = check_autograd(inputs)
    if is_training(owner):
        warnings.warn(TRAINING_WARNING, stacklevel=2)
    needs_layer = "layer" in spec.defaults and params.get("layer") is None and isinstance(owner, nn.Module)
    layer = ruleset.gradcam_layer(owner) if needs_layer else contextlib.nullcontext()
    with buffers_kept(owner), seeded(seed), layer as found:
        if compile or contains_compiled(model):
            with eager_probe(), torch.enable_grad():  # the model output, and a look for ops compiling would hide
                output = pytree.tree_map_only(Tensor, Tensor.detach, _forward(model, inputs.clone().requires_grad_(True)))
            if compile:
                model = compiled(model, "inductor" if compile is True else compile)
        else:
            with torch.no_grad():
                output = _forward(model, inputs)
        target_fn = resolve_target(target, output, labels)
        scores = target_scores(target_fn, output, inputs.shape[0])
        context = MethodContext(
            model, target_fn, pullback=spec.pullback, temperatures=ruleset.temperatures,
            module_rules=ruleset.module_rules, seed=seed,
        )
        if needs_layer:
            params = {**params, "layer": found}
        attributions, extras, used = run_method(spec, context, inputs, params)
    if context.exact_gradient_ops and not (compile or contains_compiled(model)):
        extras = {**extras, EXACT_GRADIENT_OPS: dict(sorted(context.exact_gradient_ops.items()))}
    used = {k: v for k, v in used.items() if k != "layer" or not needs_layer}
    attributions = attributions.detach()
    if attributions.shape != inputs.shape:
        raise RuntimeError(f"{method} returned shape {tuple(attributions.shape)} for inputs {tuple(inputs.shape)}")
    if not torch.isfinite(attributions).all():
        warnings.warn(f"{method} produced non-finite attributions", stacklevel=2)
    return Explanation(
        attributions, inputs, target_fn, method, used, _detach_output(output), scores.detach(), extras, rules=ruleset
    )


def quantus_explain_func(
    model: nn.Module,
    inputs: np.ndarray | Tensor,
    targets: np.ndarray | Tensor | int,
    method: str = "soft_pullback",
    device: str | torch.device | None = None,
    **params: Any,
) -> np.ndarray:
    """Quantus ``explain_func``: ``quantus.X(...)(..., explain_func=spmm.quantus_explain_func,
    explain_func_kwargs={"method": "soft_pullback"})``.  Returns attributions like ``inputs`` (NumPy).

    inputs: (B, ...) floating point (cast to the model's dtype); targets: (B,) integral class
    indices (float arrays holding whole numbers are accepted)."""
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.as_tensor(inputs if isinstance(inputs, Tensor) else np.asarray(inputs))
    if not x.is_floating_point():
        raise SpmmInputError(
            f"quantus_explain_func needs float inputs as the model sees them, got dtype {x.dtype}; "
            "scale integer images (e.g. uint8 0–255) to the model's input range first"
        )
    y = torch.as_tensor(targets if isinstance(targets, Tensor) else np.asarray(targets)).flatten()
    if y.is_floating_point() and not torch.equal(y, y.round()):
        raise SpmmInputError(f"targets must be integral class indices, got {y.tolist()}")
    if y.dtype == torch.bool or y.is_complex():
        raise SpmmInputError(f"targets must be integral class indices, got dtype {y.dtype}")
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    explanation = explain(model, x.to(device, dtype), y.long().to(device), method, **params)
    return explanation.numpy()
