"""``spmm explain-text``: word-level explanations of the sentiment or a zero-shot topic classifier."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain-text", help="explain a text classifier's decision word by word (MiniLM encoder)",
        description="Explain the SST-2 sentiment classifier (default) or a zero-shot classifier over --labels.",
    )
    parser.add_argument("texts", nargs="+", metavar="TEXT", help="texts to explain")
    task = parser.add_mutually_exclusive_group()
    task.add_argument("--task", choices=["sentiment", "topic"], default="sentiment",
                      help="sentiment: SST-2 head; topic: zero-shot AG News topics")
    task.add_argument("--labels", help="comma-separated labels for a zero-shot classifier, e.g. 'sports,politics'")
    parser.add_argument("--target", help="label (name or index) to explain; default: the predicted label")
    parser.add_argument("--method", default="soft_pullback", help="attribution method (spmm.list_methods())")
    parser.add_argument("--score", choices=["signed", "norm"], default="signed",
                        help="token score: signed <attr, embedding> or the norm of attr")
    parser.add_argument("--out", type=Path, help="write explanations.html into this folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object per text")
    parser.add_argument("--error-on-long", action="store_true",
                        help="reject texts longer than the model's maximum instead of truncating them")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spmm.adapters.text_models import agnews_zero_shot, load_sst2_classifier, load_zero_shot_classifier
    from spmm.adapters.text_pipeline import classify_and_explain
    from spmm.modalities.text import html_page, render_html, render_terminal

    if args.labels:
        classifier = load_zero_shot_classifier([label for label in args.labels.split(",")])
    elif args.task == "topic":
        classifier = agnews_zero_shot()
    else:
        classifier = load_sst2_classifier()
    target = int(args.target) if args.target and args.target.isdigit() else args.target
    results = classify_and_explain(
        classifier, args.texts, target, args.method, score=args.score,
        on_overflow="error" if args.error_on_long else "truncate",
    )
    for result in results:
        if args.json:
            print(json.dumps(result.as_record()))
            continue
        probability = result.probabilities[result.label]
        print(f"{result.label} ({probability:.2f}); explaining {result.explained_label!r} with {args.method}")
        print("  " + render_terminal(result.words))
        print("  " + "  ".join(f"{w}:{s:+.3f}" for w, s in zip(result.words.words, result.words.scores)))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        fragments = [
            render_html(r.words, f"{r.label} ({r.probabilities[r.label]:.2f}); explained: {r.explained_label}")
            for r in results
        ]
        path = args.out / "explanations.html"
        path.write_text(html_page(fragments))
        if not args.json:
            print(f"wrote {path}")
    return 0
