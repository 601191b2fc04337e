"""Rank the explainers the paper reports for ResNet50 (SPEC §4) by our Lite0 means and by the
published means, per metric; prints a markdown table.

Usage: python benchmarks/vision/compare_with_paper.py FAITHFULNESS_OUT [FOCUS_OUT]
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import scipy.stats

from spmm.metrics.registry import METRICS

# Published ResNet50 means (SPEC §4).
PAPER = {
    "infidelity": {"soft_pullback": 5.99, "gradient": 83.3, "smoothgrad": 66.9, "integrated_gradients": 66.8, "guided_gradcam": 5.76, "pullback_ascent": 5.38},
    "faithfulness_correlation": {"soft_pullback": 0.389, "gradient": 0.241, "smoothgrad": 0.331, "integrated_gradients": 0.244, "guided_gradcam": 0.437, "pullback_ascent": 0.382},
    "faithfulness_estimate": {"soft_pullback": 0.437, "gradient": 0.289, "smoothgrad": 0.321, "integrated_gradients": 0.421, "guided_gradcam": 0.275, "pullback_ascent": 0.394},
    "monotonicity_correlation": {"soft_pullback": 0.42, "gradient": 0.275, "smoothgrad": 0.364, "integrated_gradients": 0.35, "guided_gradcam": 0.507, "pullback_ascent": 0.421},
    "max_sensitivity": {"soft_pullback": 0.119, "gradient": 0.952, "smoothgrad": 0.639, "integrated_gradients": 0.788, "guided_gradcam": 0.242, "pullback_ascent": 0.244},
    "random_logit": {"soft_pullback": -0.062, "gradient": -0.032, "smoothgrad": -0.024, "integrated_gradients": -0.029, "guided_gradcam": 0.417, "pullback_ascent": 0.212},
    "focus": {"soft_pullback": 0.748, "gradient": 0.634, "smoothgrad": 0.641, "integrated_gradients": 0.623, "guided_gradcam": 0.849, "pullback_ascent": 0.731},
}


def ranking(means: dict[str, float], metric: str) -> list[str]:
    return sorted(means, key=means.get, reverse=METRICS[metric].higher_is_better)


def main(folders: list[str]) -> str:
    summary = pd.concat([pd.read_csv(Path(f) / "summary.csv") for f in folders])
    lines = ["| metric | paper ResNet50 ranking (best first) | our Lite0 ranking | Spearman ρ of ranks |", "|---|---|---|---|"]
    for metric, published in PAPER.items():
        ours_rows = summary[summary.metric == metric].set_index("explainer")["mean"].to_dict()
        shared = [e for e in published if e in ours_rows]
        if len(shared) < 2:
            continue
        paper_rank = ranking({e: published[e] for e in shared}, metric)
        our_rank = ranking({e: ours_rows[e] for e in shared}, metric)
        rho = scipy.stats.spearmanr([paper_rank.index(e) for e in shared], [our_rank.index(e) for e in shared])[0]
        lines.append(f"| {metric} | {' > '.join(paper_rank)} | {' > '.join(our_rank)} | {rho:+.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(sys.argv[1:]))
