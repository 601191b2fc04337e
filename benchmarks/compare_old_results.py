"""Per-item comparison of a ``spmm bench`` run with the committed rows of the old text/audio stacks.

    python benchmarks/compare_old_results.py NEW_OUT/scores.csv benchmarks/text/results_sst2.csv
    python benchmarks/compare_old_results.py NEW_OUT/scores.csv benchmarks/audio/results/honk-res8-full/honk-res8.clips.jsonl

For every (explainer, metric) both have: the items in common, the old and the new mean over them,
the mean |new − old| and the Pearson correlation of new and old across the items.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

OLD_NAMES = {
    "SoftPullback": "soft_pullback", "PullbackAscent": "pullback_ascent", "SmoothPullback": "smooth_pullback",
    "IntegratedPullbacks": "integrated_pullbacks", "Gradient": "gradient", "SmoothGrad": "smoothgrad",
    "IntegratedGradients": "integrated_gradients",
}
OLD_METRICS = {"faithfulness_corr": "faithfulness_correlation"}


def old_rows(path: Path) -> pd.DataFrame:
    """The old stack's per-item rows as (sample, explainer, metric, score), in the new names."""
    rows = []
    if path.suffix == ".csv":
        table = pd.read_csv(path, dtype={"item": str})
        table = table.drop_duplicates(["item", "method"])  # the old summary kept the first row of an item
        for record in table.to_dict("records"):
            for metric, value in record.items():
                if metric not in ("item", "method") and pd.notna(value):
                    rows.append((record["item"], record["method"], metric, float(value)))
    else:
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "methods" in record:
                for method, values in record["methods"].items():
                    rows += [(record["id"], method, m, v) for m, v in values.items() if m != "seconds"]
            else:
                rows += [(f"mosaic{record['id']:04d}", method, "focus", v) for method, v in record["focus"].items()]
    old = pd.DataFrame(rows, columns=["sample", "explainer", "metric", "score"])
    old["explainer"] = old["explainer"].map(OLD_NAMES)
    old["metric"] = old["metric"].replace(OLD_METRICS)
    return old.dropna(subset=["explainer"])


def compare(new: pd.DataFrame, old: pd.DataFrame) -> str:
    """A markdown table of the per-item agreement of ``new`` with ``old``."""
    merged = new.merge(old, on=["sample", "explainer", "metric"], suffixes=("_new", "_old")).dropna()
    lines = ["| explainer | metric | items | old mean | new mean | mean abs. diff | Pearson r (items) |",
             "|---|---|---|---|---|---|---|"]
    for (explainer, metric), part in merged.groupby(["explainer", "metric"], sort=False):
        a, b = part["score_old"].to_numpy(), part["score_new"].to_numpy()
        r = np.corrcoef(a, b)[0, 1] if len(a) > 1 and a.std() > 0 and b.std() > 0 else float("nan")
        lines.append(f"| {explainer} | {metric} | {len(a)} | {a.mean():.3f} | {b.mean():.3f} | "
                     f"{np.abs(a - b).mean():.3f} | {r:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("new", type=Path, help="scores.csv of a spmm bench run")
    parser.add_argument("old", type=Path, help="the old stack's per-item CSV or JSONL")
    args = parser.parse_args()
    print(compare(pd.read_csv(args.new, dtype={"sample": str}), old_rows(args.old)))


if __name__ == "__main__":
    main()
