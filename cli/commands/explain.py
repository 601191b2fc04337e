"""``spmm explain``, ``spmm compare`` and ``spmm counterfactual`` for every modality
(``explain-text`` and ``explain-audio`` are aliases with that modality's default model)."""

from __future__ import annotations

import argparse
from pathlib import Path

import spmm
from spmm.errors import SpmmInputError

from .common import (
    OutputFiles,
    add_input_options,
    add_method_options,
    add_model_arguments,
    check_methods,
    configured,
    load_model,
    method_parameters,
    prepare_options,
    print_record,
    progress,
    refuse_missing_input_files,
    resolve_device,
    rule_temperatures,
    save_renderings,
    split_model_and_inputs,
)

DEFAULT_COMPARE = "gradient,smoothgrad,integrated_gradients,soft_pullback,pullback_ascent"


def _explain_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help_text, description=help_text,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="[MODEL] INPUT",
                        help="optional model spec, then image/audio files or texts")
    add_model_arguments(parser)
    add_input_options(parser)
    parser.add_argument("--method", default="soft_pullback", help="attribution method (spmm.list_methods())")
    parser.add_argument("--target", default="top1", help="top1, a class index or a label name")
    add_method_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object per input (the framework's schema)")
    parser.add_argument("--score", choices=("signed", "norm", "sum"), default=None,
                        help="text: token score ⟨attr, embedding⟩ (signed), ‖attr‖ (norm) or Σ attr (sum); "
                             "None: sum for methods that already multiply by the input, else signed")
    parser.add_argument("--text", default=None,
                        help="image–text models (lite0-minilm, CLIP/SigLIP folders): the text each image is matched with; "
                             "vision-language models (LLaVA, PaliGemma folders): the prompt")
    parser.add_argument("--explain", choices=("image", "text"), default="image", dest="side",
                        help="image–text models: explain the image's pixels or the text's words (with --text)")
    parser.add_argument("--generate", type=int, default=None, metavar="N",
                        help="language models: generate N tokens greedily and explain each on the prompt and "
                             "the tokens before it (HTML tokens x tokens matrix + JSON); speech-to-text models "
                             "(Whisper, CTC folders): the first N transcript tokens, each on the clip's "
                             "time-frequency bins (HTML token strip over the spectrogram + JSON, WAV)")
    return parser


def register(subparsers: argparse._SubParsersAction) -> None:
    explain = _explain_parser(subparsers, "explain", "explain a model's prediction on each input (any modality)")
    explain.set_defaults(func=run_explain, modality=None)
    text = _explain_parser(subparsers, "explain-text", "alias of explain for texts (default model: minilm-sst2)")
    text.set_defaults(func=run_explain, modality="text")
    audio = _explain_parser(subparsers, "explain-audio", "alias of explain for audio (default model: kws-res8)")
    audio.set_defaults(func=run_explain, modality="audio")

    compare = subparsers.add_parser("compare", help="one input explained by several methods, side by side",
                                    formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    compare.add_argument("inputs", nargs="+", metavar="[MODEL] INPUT", help="optional model spec, then one input")
    add_model_arguments(compare)
    add_input_options(compare)
    compare.add_argument("--methods", default=DEFAULT_COMPARE, help="comma-separated method names")
    compare.add_argument("--target", default="top1", help="top1, a class index or a label name")
    compare.add_argument("--kind", default="signed", choices=("signed", "absolute", "input_x_attribution"),
                         help="how image maps are drawn")
    add_method_options(compare)
    compare.set_defaults(func=run_compare, modality=None)

    counterfactual = subparsers.add_parser(
        "counterfactual", help="PullbackAscent towards a class: x, x+δ and δ per step (images)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    counterfactual.add_argument("inputs", nargs="+", metavar="[MODEL] IMAGE", help="optional model spec, then one image")
    add_model_arguments(counterfactual)
    counterfactual.add_argument("--target", required=True, help="class index or label name to move towards")
    counterfactual.add_argument("--steps", type=int, default=5, help="ascent steps K")
    counterfactual.add_argument("--step-size", type=float, default=20.0, help="L2 step size α in [−1,1] units")
    add_method_options(counterfactual, parameters=False)
    counterfactual.set_defaults(func=run_counterfactual, modality=None)


def run_explain(args: argparse.Namespace) -> int:
    refuse_missing_input_files(args.inputs)
    check_methods([args.method])
    params = method_parameters(args, [args.method])[args.method]
    temperatures, device = rule_temperatures(args), resolve_device(args.device)
    files = OutputFiles(args.out)
    spec, inputs = split_model_and_inputs(args, args.inputs, args.modality)
    model = configured(load_model(spec, args), temperatures, device)
    prompt = _vision_language_prompt(model, spec, args)
    target = args.target if prompt else _image_text_target(model, spec, args)
    if args.generate is not None:
        target = generation_target(args, model, spec)
    for item in progress(inputs, f"explain ({args.method})"):
        if args.side == "text":
            explanation = model.explain_text([args.text], image=item, method=args.method, seed=args.seed,
                                             prepare_options=prepare_options(args), **params)
        else:
            explanation = model.explain([item], target, args.method, seed=args.seed,
                                        prepare_options=prepare_options(args), **params, **prompt)
        if args.score is not None:
            if explanation.modality != "text":
                raise SpmmInputError(f"--score applies to text models; {spec} is a {explanation.modality} model")
            explanation = explanation.scored(args.score)
        stem = files.stem(item, spec, args.method, explanation.target_label(0) or args.target)
        print_record(explanation, save_renderings(explanation, files, stem), args.json)
    return 0


def _vision_language_prompt(model: object, spec: str, args: argparse.Namespace) -> dict[str, str]:
    """``{"prompt": --text}`` for vision-language models (a one-line error without it), else {}."""
    from spmm.adapters.hf.vlm import VisionLanguageModel

    if not isinstance(model, VisionLanguageModel):
        return {}
    if args.text is None or not args.text.strip():
        raise SpmmInputError(f'{spec} is a vision-language model: give its prompt with --text "..."')
    return {"prompt": args.text}


def _image_text_target(model: object, spec: str, args: argparse.Namespace) -> str:
    """The target of ``explain``: ``--target``, or ``--text`` for image–text models (checked here)."""
    if args.text is None and args.side == "image":
        return args.target
    if not hasattr(model, "explain_text"):
        raise SpmmInputError(f"--text and --explain apply to image–text models (lite0-minilm, CLIP/SigLIP folders); "
                             f"{spec} is not one")
    if args.text is None or not args.text.strip():
        raise SpmmInputError("--explain text needs --text \"...\": the text whose words are explained")
    if args.target != "top1":
        raise SpmmInputError("give either --text (the text to match) or --target, not both")
    return args.text
def generation_target(args: argparse.Namespace, model: spmm.Explainable, spec: str):
    """``--target`` as given, or ``spmm.Continuation(max_new_tokens=N)`` for ``--generate N``."""
    if args.generate is None:
        return args.target
    from spmm.adapters.hf.generation import LanguageModel
    from spmm.adapters.hf.speech import SpeechToTextModel
    from spmm.adapters.hf.vlm import VisionLanguageModel

    if not isinstance(model, (LanguageModel, VisionLanguageModel, SpeechToTextModel)):
        raise SpmmInputError("--generate needs a language model (a causal LM, seq2seq, vision-language or "
                             f"speech-to-text folder); {spec} is not one")
    if args.generate < 1:
        raise SpmmInputError(f"--generate takes a positive number of tokens, got {args.generate}")
    if args.score is not None or args.target != "top1":
        raise SpmmInputError("--generate explains the generated tokens themselves; drop --target and --score")
    return spmm.Continuation(max_new_tokens=args.generate)


def run_compare(args: argparse.Namespace) -> int:
    refuse_missing_input_files(args.inputs)
    from spmm.modalities.image import save_comparison_grid

    methods = check_methods(m.strip() for m in args.methods.split(",") if m.strip())
    params = method_parameters(args, methods)
    temperatures, device = rule_temperatures(args), resolve_device(args.device)
    files = OutputFiles(args.out)
    spec, inputs = split_model_and_inputs(args, args.inputs)
    if len(inputs) != 1:
        raise SpmmInputError(f"compare takes one input, got {len(inputs)}")
    model = configured(load_model(spec, args), temperatures, device)
    target = args.target
    explanations = {}
    for method in progress(methods, "compare"):
        explanations[method] = model.explain(inputs, target, method, seed=args.seed,
                                             prepare_options=prepare_options(args), **params[method])
    first = next(iter(explanations.values()))
    label = first.target_label(0) or args.target
    if first.modality == "image":
        path = save_comparison_grid(
            first.inputs, {m: e.attributions for m, e in explanations.items()},
            files.path(files.stem(inputs[0], spec, "compare", label), ".png"),
            row_titles=[label], kind=args.kind, title=f"{Path(inputs[0]).name} — {spec}",
        )
        print(path)
        return 0
    for method, explanation in explanations.items():
        written = save_renderings(explanation, files, files.stem(inputs[0], spec, method, label))
        print(f"{method}: {', '.join(written)}")
    return 0


def run_counterfactual(args: argparse.Namespace) -> int:
    refuse_missing_input_files(args.inputs)
    from spmm.modalities.image import save_counterfactual_grid

    if args.steps < 1:
        raise SpmmInputError(f"--steps must be at least 1, got {args.steps}")
    temperatures, device = rule_temperatures(args), resolve_device(args.device)
    files = OutputFiles(args.out)
    spec, inputs = split_model_and_inputs(args, args.inputs)
    if len(inputs) != 1:
        raise SpmmInputError(f"counterfactual takes one image, got {len(inputs)}")
    model = configured(load_model(spec, args), temperatures, device)
    if model.modality.name != "image":
        raise SpmmInputError(f"counterfactual draws image trajectories; {spec} is a {model.modality.name} model")
    explanation = model.explain(inputs, args.target, "pullback_ascent", steps=args.steps,
                                step_size=args.step_size)
    label = explanation.target_label(0)
    scores = explanation.extras["step_scores"][:, 0]
    figure = save_counterfactual_grid(
        {label: explanation.extras["trajectory"][:, 0]},
        files.path(files.stem(inputs[0], spec, "counterfactual", label), ".png"),
        step_scores={label: scores}, title=f"{Path(inputs[0]).name}: PullbackAscent towards '{label}'",
    )
    print(f"'{label}' logit per step: {', '.join(f'{float(s):.2f}' for s in scores)}")
    print(figure)
    return 0
