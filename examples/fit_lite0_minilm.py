"""Fit the linear map of ``lite0-minilm`` (EfficientNet-Lite0 <-> MiniLM) and measure its zero-shot accuracy.

The map is fitted without images: each of the 1000 ImageNet classes has a row w_c of Lite0's
classifier (1280) and MiniLM embeddings t_c of its prompts (384, averaged over the fitting
templates).  Candidates:

- ``image-to-text``: ridge M with w_c M ≈ t_c − μ_t; an image embeds as f(x) M, a text as t − μ_t;
- ``text-to-image``: ridge A with (t_c − μ_t) A ≈ w_c − μ_w; an image embeds as f(x) (Lite0's pooled
  feature), a text as (t − μ_t) A + μ_w, a predicted classifier row;

each with and without centring (μ = the class mean, or 0) and λ on a grid.  Measured for each:
the retrieval accuracy on 200 held-out CLASSES (fit on the other 800; a held-out classifier row
must find its class's text among all 1000) — how far the map reaches beyond ImageNet's classes —
and the zero-shot top-1 on the VALIDATION half of ``--data`` (odd rows) against the fitting
templates' texts.  The candidate with the best validation top-1 is refitted on all classes; its
logit scale minimises the validation cross-entropy.  Zero-shot top-1/top-5 is then reported on
the TEST half (even rows) and on all images, with prompt templates NOT used for fitting.
Writes ``<out>/lite0_minilm_map.safetensors``
and ``.json`` (recipe, selection table, accuracies).

    python examples/fit_lite0_minilm.py --data ../shared/data/imagenet-sample
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import platform
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor
from tqdm import tqdm

FIT_TEMPLATES = ("a photo of a {}.", "a picture of a {}.", "an image of a {}.", "a good photo of a {}.")
EVAL_TEMPLATES = ("a close-up photo of the {}.", "this is a {}.")
DEFAULT_TEMPLATE = "a close-up photo of the {}."
"""The default labels' prompt (an evaluation template: the shipped default is not a fitted wording)."""
LAMBDAS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
SCALES = tuple(float(s) for s in range(5, 101, 5))
HELD_OUT = 200


def normalize(x: Tensor) -> Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


def ridge(x: Tensor, y: Tensor, lam: float) -> Tensor:
    """argmin_B ‖x B − y‖² + λ‖B‖²: (dx, dy)."""
    return torch.linalg.solve(x.T @ x + lam * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y)


def fit(direction: str, centred: bool, rows: Tensor, texts: Tensor, lam: float) -> dict[str, Tensor]:
    """The map of one candidate fitted on (rows (N, 1280), texts (N, 384))."""
    text_centre = texts.mean(0) if centred else torch.zeros_like(texts[0])
    if direction == "image-to-text":
        return {"image_map": ridge(rows, texts - text_centre, lam), "text_centre": text_centre}
    row_centre = rows.mean(0) if centred else torch.zeros_like(rows[0])
    return {"text_map": ridge(texts - text_centre, rows - row_centre, lam), "text_centre": text_centre,
            "text_map_bias": row_centre}


def embed_pair(maps: dict[str, Tensor], features: Tensor, texts: Tensor) -> tuple[Tensor, Tensor]:
    """(image embeddings, text embeddings), unit norm, of features (B, 1280) and texts (C, 384)."""
    centred = texts - maps["text_centre"]
    if "image_map" in maps:
        return normalize(features @ maps["image_map"]), normalize(centred)
    return normalize(features), normalize(centred @ maps["text_map"] + maps["text_map_bias"])


def select(rows: Tensor, fit_texts: Tensor, features: Tensor, labels: Tensor, seed: int) -> tuple[list[dict], dict]:
    """Every candidate's held-out-class retrieval and validation-image accuracy, and the best one."""
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    held, train = order[:HELD_OUT], order[HELD_OUT:]
    table = []
    for direction in ("image-to-text", "text-to-image"):
        for centred in (False, True):
            for lam in tqdm(LAMBDAS, desc=f"select {direction}{' centred' if centred else ''}", leave=False):
                row_embeddings, text_embeddings = embed_pair(fit(direction, centred, rows[train], fit_texts[train], lam),
                                                             rows[held], fit_texts)
                class_top1 = float(((row_embeddings @ text_embeddings.T).argmax(1) == held).double().mean())
                image_embeddings, text_embeddings = embed_pair(fit(direction, centred, rows, fit_texts, lam),
                                                               features, fit_texts)
                similarity = image_embeddings @ text_embeddings.T
                losses = torch.tensor([float(torch.nn.functional.cross_entropy(scale * similarity, labels))
                                       for scale in SCALES])
                table.append({"direction": direction, "centred": centred, "lambda": lam,
                              "held_out_class_top1": round(class_top1, 4),
                              "validation_top1": round(float((similarity.argmax(1) == labels).double().mean()), 4),
                              "scale": SCALES[int(losses.argmin())]})
    return table, max(table, key=lambda row: (row["validation_top1"], row["lambda"]))


def read_images(folder: Path, lite0: torch.nn.Module, batch_size: int) -> tuple[Tensor, Tensor]:
    """Lite0's pooled features (N, 1280) and the class indices (N,) of a folder with labels.csv."""
    from spmm.modalities.image import load_image

    entries = list(csv.DictReader((folder / "labels.csv").open()))
    features = []
    with torch.no_grad():
        for start in tqdm(range(0, len(entries), batch_size), desc="image features"):
            x = torch.stack([load_image(folder / e["file"]) for e in entries[start:start + batch_size]])
            timm_model = lite0.model
            pixels = ((x + 1) / 2 - lite0.mean) / lite0.std
            features.append(timm_model.forward_head(timm_model.forward_features(pixels), pre_logits=True))
    return torch.cat(features).double(), torch.tensor([int(e["class_index"]) for e in entries])


def accuracy(image_embeddings: Tensor, text_embeddings: Tensor, labels: Tensor) -> dict[str, float]:
    top = (image_embeddings @ text_embeddings.T).topk(5, dim=1).indices
    return {"top1": round(float((top[:, 0] == labels).double().mean()), 4),
            "top5": round(float((top == labels[:, None]).any(1).double().mean()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="labelled image folder (labels.csv): validation and test halves")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "adapters" / "data"))
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out class split")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    started = time.time()

    from spmm.adapters.text.models import SentenceEncoder, embed_sentences, load_minilm
    from spmm.adapters.vision.models import imagenet_class_names, load_efficientnet_lite0

    names = imagenet_class_names()
    lite0 = load_efficientnet_lite0()
    rows = lite0.model.classifier.weight.detach().double()
    features, labels = read_images(Path(args.data), lite0, args.batch_size)
    validation, test = slice(1, None, 2), slice(0, None, 2)
    tokenizer, bert = load_minilm()
    encoder = SentenceEncoder(bert).eval()
    templates = list(dict.fromkeys(FIT_TEMPLATES + EVAL_TEMPLATES + (DEFAULT_TEMPLATE,)))
    prompts = {t: embed_sentences(tokenizer, encoder, [t.format(n) for n in names]).double()
               for t in tqdm(templates, desc="MiniLM prompt embeddings")}
    fit_texts = normalize(torch.stack([prompts[t] for t in FIT_TEMPLATES]).mean(0))

    table, chosen = select(rows, fit_texts, features[validation], labels[validation], args.seed)
    maps = fit(chosen["direction"], chosen["centred"], rows, fit_texts, chosen["lambda"])
    tensors = {"text_centre": maps["text_centre"], "scale": torch.tensor(chosen["scale"]),
               "label_sentence_embeddings": prompts[DEFAULT_TEMPLATE]}
    if "image_map" in maps:
        tensors["image_map.weight"] = maps["image_map"].T
    else:
        tensors["text_map.weight"] = maps["text_map"].T
        tensors["text_map.bias"] = maps["text_map_bias"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.float().contiguous() for k, v in tensors.items()}, str(out / "lite0_minilm_map.safetensors"))

    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, used in [(t, [t]) for t in EVAL_TEMPLATES] + [("average of the evaluation templates",
                                                              list(EVAL_TEMPLATES))]:
        texts = normalize(torch.stack([prompts[t] for t in used]).mean(0))
        image_embeddings, text_embeddings = embed_pair(maps, features, texts)
        results[name] = {part: accuracy(image_embeddings[rows_], text_embeddings, labels[rows_])
                         for part, rows_ in (("test half", test), ("all images", slice(None)))}
    own = {part: accuracy(features[rows_] @ rows.T, torch.eye(1000).double(), labels[rows_])
           for part, rows_ in (("test half", test), ("all images", slice(None)))}
    import safetensors
    import transformers

    info = {
        "recipe": {"fit_templates": list(FIT_TEMPLATES), "evaluation_templates": list(EVAL_TEMPLATES),
                   "held_out_classes": HELD_OUT, "selected_by": "validation_top1 (odd rows of --data, fit templates)",
                   "seed": args.seed, "lambdas": list(LAMBDAS), "scales": [SCALES[0], SCALES[-1]], "chosen": chosen},
        "default_template": DEFAULT_TEMPLATE,
        "selection": table,
        "zero_shot": {"data": str(args.data), "images": len(labels), "test_images": len(labels[test]),
                      "accuracy": results, "lite0_own_classifier": own},
        "command": f"python examples/fit_lite0_minilm.py --data {args.data}",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "safetensors": safetensors.__version__},
        "date": datetime.date.today().isoformat(),
        "seconds": round(time.time() - started, 1),
    }
    (out / "lite0_minilm_map.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps({"chosen": chosen, "zero_shot": results, "lite0_own_classifier": own}, indent=1))


if __name__ == "__main__":
    main()
