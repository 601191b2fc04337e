"""Explain honk res8 keyword decisions on real Speech Commands clips.

For each method (Gradient, SoftPullback, PullbackAscent): one PNG with the maps on the
log-mel bins of every clip; for SoftPullback also a WAV of the clips filtered by their
positive attribution, one after the other.

    python examples/audio_keyword_spotting.py --data ../shared/data --out keyword-explanations
"""

from __future__ import annotations

import argparse
from pathlib import Path

import spmm

METHODS = ("gradient", "soft_pullback", "pullback_ascent")
WORDS = ("yes", "no", "stop", "go")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data", help="folder with audio/speech_commands and audio/models")
    parser.add_argument("--out", default="keyword-explanations")
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    model = spmm.load("honk-res8", weights=data / "audio" / "models" / "honk_res8.pt")
    files = [sorted((data / "audio" / "speech_commands" / word).glob("*.wav"))[0] for word in WORDS]
    for method in METHODS:
        explanation = model.explain(files, "top1", method)
        written = [explanation.save(out / f"{method}.png")]
        if method == "soft_pullback":
            written.append(explanation.save(out / f"{method}.positive.wav"))
        print(explanation.summary())
        print(f"  written: {', '.join(map(str, written))}")


if __name__ == "__main__":
    main()
