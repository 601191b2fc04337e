"""Dataset-scale attribution for ``spmm attribute``: a folder explained into sharded outputs.

One function explains one shard (the ``batch_size`` inputs that start at a fixed index) and
writes it atomically as ``shards/<first index>.safetensors``: the attributions (B, *input_shape)
float32 and, in the file's metadata, one JSON row per input (file, target, score, top-1).
The same function runs in this process (:func:`run_local`) or in a pool of Ray Data actors,
one model per actor (:func:`run_on_ray`), so both give the same files (bit for bit at the same
number of torch threads per model; other thread counts change float rounding only).  ``index.parquet``,
one row per input, is rebuilt from the shards at the end.

An output folder belongs to one set of settings (``settings.json`` holds them and their
sha256 key): a rerun with the same settings skips the shards already written, other settings
are refused.  A shard is keyed on content: its key hashes the settings with the sha256 of each
input file's bytes and its target class, and the file carries the sha256 of its attributions.
On resume a shard is kept only when it reads back whole with the current key and checksum; a
shard whose inputs or targets changed, or that is truncated, garbled or rewritten, is computed
again (and said so).  Ray and the file formats stay here, outside the core.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch

import spmm
from spmm.errors import SpmmInputError

from .ray_pool import SCALE_EXTRA

SHARDS = "shards"
SETTINGS_FILE = "settings.json"
INDEX_FILE = "index.parquet"
INDEX_COLUMNS = ("file", "shard", "row", "target_index", "target_label", "score", "top1_index", "top1_label",
                 "top1_probability", "method", "model", "seed")


@dataclasses.dataclass(frozen=True)
class AttributeSettings:
    """Everything the written files depend on (not ``--ray``, ``--workers`` or ``--threads``: they
    give the same files, up to float rounding for other thread counts).

    data: the resolved data folder; files: the explained file names in order; seed: every
    shard is explained with it (sampling methods draw per input from (seed, the input's values), so
    shards do not depend on ``--batch-size``); weights_sha256: the checkpoint's
    content, so new weights under the same path are other settings.
    """

    model: str
    weights: str | None
    weights_sha256: str | None
    labels: str | None
    random_init: bool
    method: str
    target: str
    batch_size: int
    seed: int
    data: str
    files: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "files": list(self.files)}

    @property
    def key(self) -> str:
        """sha256 (hex) of the canonical JSON of the settings."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Shard:
    """The inputs of one shard: ``paths`` from input index ``first`` on, their class targets
    (None: each input's top-1 class) and ``key``, the sha256 of the settings key with each
    input's content hash and class (what the shard's file must carry to be reused)."""

    first: int
    paths: tuple[str, ...]
    classes: tuple[int, ...] | None
    key: str

    def to_row(self) -> dict[str, str]:
        return {"shard": json.dumps(dataclasses.asdict(self))}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Shard":
        fields = json.loads(str(row["shard"]))
        classes = fields["classes"]
        return cls(fields["first"], tuple(fields["paths"]), tuple(classes) if classes is not None else None,
                   fields["key"])


def shard_name(first: int) -> str:
    """The file of the shard starting at input ``first`` (fixed, so a retry overwrites it)."""
    return f"{first:08d}.safetensors"


def shard_path(out: str | Path, first: int) -> Path:
    return Path(out) / SHARDS / shard_name(first)


def load_explainable(settings: AttributeSettings) -> spmm.Explainable:
    """The model of ``settings`` (a random-init model drawn from ``seed``, as ``spmm explain`` does)."""
    from .commands.common import load_model

    options = argparse.Namespace(weights=settings.weights, labels=settings.labels, random_init=settings.random_init,
                                 seed=settings.seed)
    return load_model(settings.model, options)


def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def plan(settings: AttributeSettings, classes: Sequence[int] | None) -> list[Shard]:
    """The shards of ``settings``: consecutive runs of ``batch_size`` files, each keyed on the
    settings and on its inputs' bytes and classes."""
    size = settings.batch_size
    folder = Path(settings.data)
    shards = []
    for first in range(0, len(settings.files), size):
        paths = tuple(str(folder / f) for f in settings.files[first : first + size])
        targets = tuple(classes[first : first + size]) if classes is not None else None
        inputs = [[Path(p).name, file_sha256(p), c] for p, c in zip(paths, targets or [None] * len(paths))]
        key = hashlib.sha256(json.dumps({"settings": settings.key, "inputs": inputs}).encode()).hexdigest()
        shards.append(Shard(first, paths, targets, key))
    return shards


def open_output(out: str | Path, settings: AttributeSettings) -> Path:
    """Create ``out`` for ``settings``, or check that it already belongs to them."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a folder")
    written = out / SETTINGS_FILE
    if written.exists():
        try:
            previous = json.loads(written.read_text())
        except json.JSONDecodeError:
            previous = {}
        if previous.get("key") != settings.key:
            old = previous.get("settings", {})
            changed = sorted(k for k, v in settings.as_dict().items() if old.get(k) != v)
            raise SpmmInputError(
                f"--out {out} holds attributions computed with other settings (changed: {', '.join(changed) or 'format'}); "
                "use another --out, or the same settings to resume"
            )
    elif out.exists() and any(out.iterdir()):
        raise SpmmInputError(f"--out {out} is not empty and was not written by spmm attribute; use another folder")
    try:
        (out / SHARDS).mkdir(parents=True, exist_ok=True)
        _write_atomically(written, (json.dumps({"key": settings.key, "settings": settings.as_dict()}, indent=1)
                                    + "\n").encode())
    except OSError as error:
        raise SpmmInputError(f"--out {out} cannot be written ({error.strerror or error}); choose a writable folder") from None
    return out


MISSING = "is missing"


def pending(out: Path, shards: Iterable[Shard]) -> tuple[list[Shard], list[str]]:
    """The shards to compute under ``out`` (missing, or not a whole file with the shard's key and
    a matching checksum) and, for each one found but not reusable, why."""
    todo, reasons = [], []
    for shard in shards:
        problem = shard_problem(shard_path(out, shard.first), shard)
        if problem is not None:
            todo.append(shard)
            if problem != MISSING:
                reasons.append(f"{shard_name(shard.first)} {problem}")
    return todo, reasons


def shard_problem(path: Path, shard: Shard) -> str | None:
    """None when the file at ``path`` is a whole shard of ``shard`` (its key, its number of inputs,
    attributions matching their sha256); else what is wrong with it."""
    from safetensors import safe_open

    if not path.exists():
        return MISSING
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            attributions = handle.get_tensor("attributions")
        rows = json.loads(metadata["rows"])
    except Exception as error:  # safetensors, JSON and missing fields: any unreadable file is recomputed
        return f"cannot be read ({type(error).__name__})"
    if metadata.get("key") != shard.key:
        return "was computed from other inputs or targets"
    if attributions.shape[0] != len(shard.paths) or len(rows) != len(shard.paths) \
            or _tensor_sha256(attributions) != metadata.get("sha256"):
        return "does not match its checksum"
    return None


def attribute_shard(model: spmm.Explainable, settings: AttributeSettings, shard: Shard, out: str | Path) -> Path:
    """Explain one shard and write it atomically; returns the shard file.

    File: ``attributions`` (B, *input_shape) float32; metadata ``key`` (the shard's content
    key), ``sha256`` (of the attributions' bytes) and ``rows`` (JSON list of the index rows of
    the B inputs).
    """
    from safetensors.torch import save

    target: Any = list(shard.classes) if shard.classes is not None else "top1"
    explanation = model.explain(list(shard.paths), target=target, method=settings.method, top_k=1,
                                seed=settings.seed)
    rows = []
    for row, path in enumerate(shard.paths):
        top = explanation.predictions[row][0] if explanation.predictions else None
        rows.append({
            "file": Path(path).name, "shard": shard_name(shard.first), "row": row,
            "target_index": explanation.target_index(row), "target_label": explanation.target_label(row),
            "score": float(explanation.scores[row]),
            "top1_index": top.index if top else None, "top1_label": top.label if top else None,
            "top1_probability": top.probability if top else None,
            "method": settings.method, "model": settings.model, "seed": settings.seed,
        })
    attributions = explanation.attributions.detach().to("cpu", torch.float32).contiguous()
    data = save({"attributions": attributions},
                metadata={"key": shard.key, "sha256": _tensor_sha256(attributions), "rows": json.dumps(rows)})
    path = shard_path(out, shard.first)
    _write_atomically(path, data)
    return path


def run_local(settings: AttributeSettings, shards: Sequence[Shard], out: Path, threads: int) -> Iterator[Path]:
    """Explain ``shards`` in this process with ``threads`` torch threads (restored afterwards);
    yields each shard file as it is written."""
    model = load_explainable(settings)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for shard in shards:
            yield attribute_shard(model, settings, shard, out)
    finally:
        torch.set_num_threads(previous)


class ShardExplainer:
    """A Ray Data actor: one model, explaining the shards of the batches it is given."""

    def __init__(self, settings: AttributeSettings, out: str, threads: int) -> None:
        torch.set_num_threads(threads)
        self.settings, self.out = settings, out
        self.model = load_explainable(settings)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        written = []
        for text in batch["shard"]:
            shard = Shard.from_row({"shard": text})
            written.append(str(attribute_shard(self.model, self.settings, shard, self.out)))
        return {"path": written}


def run_on_ray(settings: AttributeSettings, shards: Sequence[Shard], out: Path, workers: int, threads: int
               ) -> Iterator[Path]:
    """Explain ``shards`` on a local Ray with ``workers`` actors (one CPU, one model and ``threads``
    torch threads each); yields each shard file as it is written, in shard order."""
    from .ray_pool import map_on_actor_pool

    kwargs = {"settings": settings, "out": str(out), "threads": threads}
    for row in map_on_actor_pool([s.to_row() for s in shards], ShardExplainer, kwargs, workers):
        yield Path(row["path"])


def write_index(out: Path, settings: AttributeSettings, shards: Sequence[Shard]) -> Path:
    """``index.parquet``: the rows of every shard in input order (written atomically)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [row for shard in shards for row in _shard_rows(shard_path(out, shard.first))]
    table = pa.Table.from_pylist(rows).select(list(INDEX_COLUMNS))
    path = out / INDEX_FILE
    temporary = path.with_suffix(".parquet.tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, path)
    return path


def require_index_writer() -> None:
    """Refuse before any work when pyarrow (the Parquet writer) is missing."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise SpmmInputError(f"spmm attribute writes a Parquet index and needs pyarrow: {SCALE_EXTRA}") from None


def _tensor_sha256(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest()


def _shard_rows(path: Path) -> list[dict[str, Any]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["rows"])


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
