"""Word-level explanations of the SST-2 sentiment head and of a zero-shot topic classifier.

    python examples/text_word_scores.py                      # a few sentences of SST-2 test
    python examples/text_word_scores.py --out text-figures --count 8 --method integrated_pullbacks

Sentences come from ``../shared/data/text/sst2/stsa.binary.test`` beside the repository (or
``--data``); without it, three built-in sentences are used.  Writes one HTML page per model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import spmm
from spmm.modalities.text.datasets import read_sst2

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "text" / "sst2" / "stsa.binary.test"
FALLBACK = ["a gripping , funny film", "a boring mess from start to finish", "the acting is fine but the plot drags"]
TOPICS = ["sports", "politics", "business", "science"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="SST-2 file (default: %(default)s)")
    parser.add_argument("--count", type=int, default=4, help="number of sentences (default 4)")
    parser.add_argument("--method", default="soft_pullback", help="attribution method (default soft_pullback)")
    parser.add_argument("--out", type=Path, default=Path("text-figures"), help="output folder (default ./text-figures)")
    args = parser.parse_args()
    texts = read_sst2(args.data)[0][: args.count] if args.data.is_file() else FALLBACK[: args.count]

    for name, options in (("minilm-sst2", {}), ("minilm-zero-shot", {"labels": TOPICS})):
        explanation = spmm.load(name, **options).explain(texts, "top1", args.method)
        explanation.show()
        print(explanation.save(args.out / f"{name}-{args.method}.html"))


if __name__ == "__main__":
    main()
