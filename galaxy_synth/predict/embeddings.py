"""``predict --embeddings``: each galaxy's pooled representation, stored beside its probabilities.

The embedding is what the classification head sees: the input of the network's last linear layer
(``net.classifier`` in :class:`synthesis.models.builder.GalaxyNet` and
:class:`synthesis.models.references.ReferenceNet`) — the globally pooled image features, joined by the
extra-input MLP's features where the model has extra inputs. It is caught by a forward pre-hook on that
layer while the probabilities are computed, so it costs no second pass; with ``--tta`` it is the mean over
the views (a representation that does not change when the galaxy is rotated or mirrored). It is stored as
float16 (half the bytes; nearest-neighbour searches do not need more): in Parquet output an ``embedding``
column (a fixed-size list per row); beside a CSV or FITS output ``OUT.embeddings.npy`` (rows in the table's
order), written a chunk at a time into ``OUT.embeddings.parts/`` and assembled when the run completes, so it
resumes with the table. An unreadable image's row is NaN.

``model.onnx`` has only the class scores as its output: embeddings need the torch engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from galaxy_common import DataError
from galaxy_synth.predict.chunk_writers import PartsFolder

NEEDS_TORCH = ("--embeddings needs the torch engine (model.onnx gives only the class scores): "
               "use --engine torch or auto")


def embedding_engine(engine: str) -> str:
    """The engine an ``--embeddings`` run uses: torch for auto, one line for onnx."""
    if engine == "onnx":
        raise DataError(NEEDS_TORCH)
    return "torch"


def embedding_width(network: Any) -> int:
    """How many numbers an embedding has: the classification head's input width."""
    return int(_head(network).in_features)


def _head(network: Any) -> Any:
    head = getattr(getattr(network, "inference_model", None), "net", None)
    head = getattr(head, "classifier", None)
    if head is None:
        raise DataError(NEEDS_TORCH)
    return head


def classify_and_embed(network: Any, inputs: np.ndarray, extras: np.ndarray, ok: np.ndarray, tta: bool = False,
                       precision: str = "fp32", embeddings: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities [N, classes] (NaN where ``ok`` is False) and, with ``embeddings``, float16 embeddings
    [N, width] (NaN rows likewise; else None) for model inputs [N, S, S, C]."""
    probs = np.full((len(ok), len(network.class_names)), np.nan, np.float32)
    vectors = np.full((len(ok), embedding_width(network)), np.nan, np.float16) if embeddings else None
    if not ok.any():
        return probs, vectors
    if not embeddings:
        probs[ok] = network.probabilities(inputs[ok], extras[ok], tta, precision=precision)
        return probs, None
    captured: list[Any] = []
    handle = _head(network).register_forward_pre_hook(lambda _module, args: captured.append(args[0].float().cpu()))
    try:
        probs[ok] = network.probabilities(inputs[ok], extras[ok], tta, precision=precision)
    finally:
        handle.remove()
    views = len(network.test_time_views(tta)[0])  # the head runs once per view of each batch, views in turn
    import torch

    per_batch = [torch.stack(captured[i:i + views]).mean(dim=0) for i in range(0, len(captured), views)]
    vectors[ok] = torch.cat(per_batch).numpy().astype(np.float16)
    return probs, vectors


class EmbeddingFile:
    """``OUT.embeddings.npy`` beside a CSV or FITS output: one ``.npy`` part per chunk, assembled at the end.

    It follows its table's writer: the table's journal or parts say how many chunks are whole, and each
    chunk's part is written (renamed into place whole) before the table's chunk, so every chunk the table has
    has its part."""

    def __init__(self, out: Path, signature: str, overwrite: bool, chunks_done: int, complete: bool) -> None:
        self.path = out.with_name(out.name + ".embeddings.npy")
        fresh = chunks_done == 0 and not complete
        self._parts = PartsFolder(out.with_name(out.name + ".embeddings.parts"), self.path, signature, replace=fresh)
        folder = self._parts.folder
        ours = self._parts.found_signature == signature  # parts of this run (perhaps killed before a row)
        resuming = chunks_done > 0 and not complete
        if resuming and not ours:
            raise DataError(f"{folder} is missing or holds another run: pass --overwrite or choose another -o")
        if resuming and self._parts.whole_parts() < chunks_done:
            raise DataError(f"{folder} lacks chunks the table has: pass --overwrite or choose another -o")
        if fresh and not overwrite and (self.path.exists() or (folder.exists() and not ours)):
            raise DataError(f"{self.path} exists and is not this run's: pass --overwrite or choose another -o")

    def append(self, index: int, vectors: np.ndarray) -> None:
        self._parts.write(index, np.asarray(vectors, dtype=np.float16))

    def finish(self, chunks: int) -> None:
        """Assemble the parts into one array (a kill after its rename leaves a whole file: a rerun finds no parts
        and keeps it)."""
        if not self._parts.folder.is_dir() and self.path.is_file():
            return
        self._parts.assemble(chunks, _concatenate)


def _concatenate(target: Path, parts: list[Path]) -> None:
    """The parts' rows, one part in memory at a time, as one float16 ``.npy`` array."""
    loaded = [np.load(part, mmap_mode="r") for part in parts]
    width = loaded[0].shape[1] if loaded else 0
    whole = np.lib.format.open_memmap(target, mode="w+", dtype=np.float16, shape=(sum(map(len, loaded)), width))
    start = 0
    for part in loaded:
        whole[start:start + len(part)] = part
        start += len(part)
    whole.flush()
    del whole


class WithEmbeddingFile:
    """A table writer (CSV or FITS) and its :class:`EmbeddingFile`, written chunk for chunk."""

    def __init__(self, table_writer: Any, out: Path, signature: str, overwrite: bool) -> None:
        self.table = table_writer
        self.embeddings = EmbeddingFile(out, signature, overwrite, table_writer.chunks_done, table_writer.complete)

    @property
    def chunks_done(self) -> int:
        return self.table.chunks_done

    @property
    def complete(self) -> bool:
        return self.table.complete

    def append(self, table: pd.DataFrame, embeddings: np.ndarray | None = None) -> None:
        if embeddings is None:
            raise ValueError("an --embeddings run's chunk came without its embeddings")
        self.embeddings.append(self.table.chunks_done, embeddings)  # first: every whole table chunk has its part
        self.table.append(table)

    def finish(self) -> None:
        if not self.table.complete:
            self.embeddings.finish(self.table.chunks_done)
        self.table.finish()
