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

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from galaxy_common import DataError

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
        self.parts = out.with_name(out.name + ".embeddings.parts")
        self.signature = signature
        marker = self.parts / "_signature"
        ours = marker.is_file() and marker.read_text() == signature  # parts of this run (perhaps killed before a row)
        resuming = chunks_done > 0 and not complete
        if resuming and not ours:
            raise DataError(f"{self.parts} is missing or holds another run: pass --overwrite or choose another -o")
        if resuming and not all((self.parts / _part_name(i)).is_file() for i in range(chunks_done)):
            raise DataError(f"{self.parts} lacks chunks the table has: pass --overwrite or choose another -o")
        self._fresh = chunks_done == 0 and not complete
        if self._fresh and not overwrite and (self.path.exists() or (self.parts.exists() and not ours)):
            raise DataError(f"{self.path} exists and is not this run's: pass --overwrite or choose another -o")
        self._opened = False

    def _open(self) -> None:
        """The first write: only now is an earlier run's file removed (nothing is lost if this run fails first)."""
        if self._opened:
            return
        if self._fresh:
            self.path.unlink(missing_ok=True)
            shutil.rmtree(self.parts, ignore_errors=True)
        self.parts.mkdir(parents=True, exist_ok=True)
        (self.parts / "_signature").write_text(self.signature)
        self._opened = True

    def append(self, index: int, vectors: np.ndarray) -> None:
        self._open()
        part = self.parts / _part_name(index)
        tmp = self.parts / f".{part.name}.tmp"
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(vectors, dtype=np.float16))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, part)

    def finish(self, chunks: int) -> None:
        """Assemble the parts into one array, written under a temporary name then renamed; a kill after the rename
        leaves a whole file (a rerun finds no parts and keeps it)."""
        if not self.parts.is_dir() and self.path.is_file():
            return
        self._open()
        parts = [np.load(self.parts / _part_name(i), mmap_mode="r") for i in range(chunks)]
        width = parts[0].shape[1] if parts else 0
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        whole = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(sum(map(len, parts)), width))
        start = 0
        for part in parts:  # one part in memory at a time
            whole[start:start + len(part)] = part
            start += len(part)
        whole.flush()
        del whole
        os.replace(tmp, self.path)
        shutil.rmtree(self.parts)


def _part_name(index: int) -> str:
    return f"part-{index:06d}.npy"


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
