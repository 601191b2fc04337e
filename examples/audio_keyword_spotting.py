"""Explain honk res8 keyword decisions on real Speech Commands clips.

For each clip: Gradient, SoftPullback and PullbackAscent maps on the log-mel bins
(PNG per method) and the clip filtered by the SoftPullback positive mask (WAV).

    python examples/audio_keyword_spotting.py --data ../shared/data --out keyword-explanations
"""

from __future__ import annotations

import argparse
from pathlib import Path

from spmm.adapters.audio import load_audio_model
from spmm.adapters.audio_explain import explain_audio
from spmm.modalities.audio import batch_clips, load_audio, render_explanation, save_wav, sonify

METHODS = ("gradient", "soft_pullback", "pullback_ascent")
WORDS = ("yes", "no", "stop", "go")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data", help="folder with audio/speech_commands and audio/models")
    parser.add_argument("--out", default="keyword-explanations")
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    pipeline = load_audio_model("honk-res8", data / "audio" / "models" / "honk_res8.pt")
    files = [sorted((data / "audio" / "speech_commands" / word).glob("*.wav"))[0] for word in WORDS]
    waveform = batch_clips([load_audio(f, pipeline.sample_rate) for f in files], pipeline.clip_samples)
    for method in METHODS:
        result = explain_audio(pipeline, waveform, "top1", method)
        for i, (file, top) in enumerate(zip(files, result.top_predictions(pipeline, 1))):
            name = f"{file.parent.name}_{file.stem}"
            render_explanation(out / f"{name}.{method}.png", result.inputs[i], result.attributions[i],
                               frame_seconds=pipeline.frame_seconds, band_frequencies=pipeline.band_frequencies(),
                               title=f"{name}: {method} for '{top[0][0]}' (p={top[0][1]:.2f})")
            if method == "soft_pullback":
                n_fft, hop = pipeline.stft_size
                filtered = sonify(waveform[i], result.attributions[i], n_fft=n_fft, hop=hop,
                                  band_to_linear=pipeline.band_to_linear())
                save_wav(out / f"{name}.positive.wav", filtered, pipeline.sample_rate)
            print(f"{name}: predicted {top[0][0]} ({top[0][1]:.3f}); {method} map written")


if __name__ == "__main__":
    main()
