"""Write the small example inputs the README's quick start uses, under ``examples/inputs/``.

    python examples/make_example_inputs.py [--out examples/inputs]

- ``chelsea.jpg``: scikit-image's ``chelsea`` photograph (CC0, Stefan van der Walt), the cat
  ``spmm demo`` explains, saved as a JPEG;
- ``shapes_scene.png``: scene 0 of ``make_shapes(1, seed=0, size=64)`` (seed 0 is not the seed the
  shipped shapes models were trained on), whose class object is printed;
- ``glide.wav``: one second of a sine tone gliding from 220 to 440 Hz at 16 kHz, amplitude 0.5;
- ``stop.wav``: one Speech Commands v0.01 clip of "stop" from the dataset's test list (CC BY 4.0,
  Warden 2017), copied unchanged from ``--speech-commands`` when that folder exists (the shipped
  keyword spotter ``kws-res8`` never trained on it, and recognises it).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

GLIDE_RATE = 16_000
GLIDE_HZ = (220.0, 440.0)
WORD_CLIP = "stop/97f4c236_nohash_2.wav"
"""The Speech Commands test-list clip shipped as ``stop.wav``."""


def glide(seconds: float = 1.0, rate: int = GLIDE_RATE, low: float = GLIDE_HZ[0], high: float = GLIDE_HZ[1]) -> np.ndarray:
    """(rate·seconds,) float32 sine whose frequency rises linearly from ``low`` to ``high`` Hz."""
    t = np.arange(int(rate * seconds)) / rate
    phase = 2 * np.pi * (low * t + (high - low) * t**2 / (2 * seconds))
    return (0.5 * np.sin(phase)).astype(np.float32)


def main() -> None:
    import skimage.data

    from spmm.modalities.image.shapes import SHAPE_CLASSES, make_shapes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "inputs"))
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--speech-commands", default=str(shared / "audio" / "speech_commands"),
                        help="Speech Commands folder to copy stop.wav from (skipped when absent)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    Image.fromarray(skimage.data.chelsea()).save(out / "chelsea.jpg", quality=90)
    scenes = make_shapes(1, seed=0, size=64)
    Image.fromarray((scenes.images[0].transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(out / "shapes_scene.png")
    soundfile.write(out / "glide.wav", glide(), GLIDE_RATE, subtype="PCM_16")
    print(f"wrote {out}/chelsea.jpg, shapes_scene.png (class object: {SHAPE_CLASSES[int(scenes.labels[0])]}), glide.wav")
    word = Path(args.speech_commands) / WORD_CLIP
    if word.is_file():
        shutil.copyfile(word, out / "stop.wav")
        print(f"copied {word} to {out}/stop.wav")


if __name__ == "__main__":
    main()
