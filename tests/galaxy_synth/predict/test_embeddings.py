"""``predict --embeddings``: the classification head's input per galaxy, float16, one row per galaxy in the table's
order, in Parquet parts or beside a CSV; the torch engine only."""

import numpy as np
import pandas as pd
import pytest

from galaxy_common.errors import DataError
from galaxy_synth.cli import main
from galaxy_synth.predict.chunk_writers import CsvChunkWriter
from galaxy_synth.predict.embeddings import WithEmbeddingFile
from galaxy_synth.predict.network import load_model_dir


def _model(exported_study):
    return exported_study / "studies/exp/models/rank1"


def _run(exported_study, catalogue, out, *extra) -> int:
    return main(["predict", "--model", str(_model(exported_study)), "--catalogue", str(catalogue / "cat.csv"),
                 "--chunk-size", "7", "--workers", "1", "--precision", "fp32", "--no-progress", *extra, "-o", str(out)])


def test_embeddings_are_the_heads_input_one_float16_row_per_galaxy(exported_study, catalogue, tmp_path):
    import torch

    assert _run(exported_study, catalogue, tmp_path / "p.csv", "--embeddings") == 0
    table = pd.read_csv(tmp_path / "p.csv")
    vectors = np.load(tmp_path / "p.csv.embeddings.npy")
    loaded = load_model_dir(_model(exported_study))
    head = loaded.model.net.classifier
    assert vectors.dtype == np.float16 and vectors.shape == (len(table), head.in_features) == (40, head.in_features)
    # the head on the stored embedding gives the stored probabilities: it is what the classifier saw, row for row
    with torch.inference_mode():
        logits = head(torch.from_numpy(vectors.astype(np.float32))) / loaded.model.temperature
    probs = table[[f"p_{c}" for c in loaded.class_names]].to_numpy()
    assert np.allclose(torch.softmax(logits, dim=1).numpy(), probs, atol=2e-2)
    assert not (tmp_path / "p.csv.embeddings.parts").exists()


def test_a_galaxys_nearest_neighbour_is_itself_and_parquet_holds_the_same_embeddings(exported_study, catalogue, tmp_path):
    pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow (in the dev extra)")
    import pyarrow.parquet as pq
    from sklearn.neighbors import NearestNeighbors

    assert _run(exported_study, catalogue, tmp_path / "p.parquet", "--embeddings", "--tta") == 0
    assert _run(exported_study, catalogue, tmp_path / "p.csv", "--embeddings", "--tta") == 0
    table = pd.read_parquet(tmp_path / "p.parquet")
    vectors = np.stack(table["embedding"].to_numpy())
    column = pq.read_schema(next((tmp_path / "p.parquet").glob("part-*.parquet"))).field("embedding").type
    assert column.list_size == vectors.shape[1] and str(column.value_type) == "halffloat"
    assert np.array_equal(vectors, np.load(tmp_path / "p.csv.embeddings.npy"))
    neighbours = NearestNeighbors(n_neighbors=3).fit(vectors.astype(np.float32))
    _, nearest = neighbours.kneighbors(vectors[:10].astype(np.float32))
    assert (nearest[:, 0] == np.arange(10)).all()


def test_embeddings_need_the_torch_engine_one_line(exported_study, catalogue, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="the ONNX engine needs onnxruntime (in the dev extra)")
    assert _run(exported_study, catalogue, tmp_path / "p.csv", "--embeddings", "--engine", "onnx") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs the torch engine" in err and not (tmp_path / "p.csv").exists()
    assert _run(exported_study, catalogue, tmp_path / "p.csv", "--embeddings") == 0  # auto: torch


def test_a_csv_and_its_embedding_file_resume_chunk_for_chunk(tmp_path):
    out = tmp_path / "p.csv"
    chunk = [pd.DataFrame({"id": [f"g{i}" for i in range(s, s + 2)]}) for s in (0, 2, 4)]
    rows = [np.full((2, 3), s, np.float16) for s in range(3)]
    w = WithEmbeddingFile(CsvChunkWriter(out, "sig"), out, "sig", overwrite=False)
    w.embeddings.append(0, rows[0])  # killed after the first chunk's embeddings, before its rows
    w = WithEmbeddingFile(CsvChunkWriter(out, "sig"), out, "sig", overwrite=False)
    w.append(chunk[0], rows[0])
    w.embeddings.append(1, rows[1])  # and again after chunk 1's
    again = WithEmbeddingFile(CsvChunkWriter(out, "sig"), out, "sig", overwrite=False)
    assert again.chunks_done == 1
    again.append(chunk[1], rows[1])
    again.append(chunk[2], rows[2])
    again.finish()
    assert np.array_equal(np.load(tmp_path / "p.csv.embeddings.npy"), np.concatenate(rows))
    assert pd.read_csv(out)["id"].tolist() == [f"g{i}" for i in range(6)]
    out.unlink()
    (tmp_path / "p.csv.progress.json").unlink()
    with pytest.raises(DataError, match="not this run's"):  # embeddings left without their table are not overwritten
        WithEmbeddingFile(CsvChunkWriter(out, "other"), out, "other", overwrite=False)


def test_a_dask_run_writes_the_same_fits_table_and_embeddings(exported_study, catalogue, tmp_path):
    pytest.importorskip("distributed", reason="the Dask run needs dask.distributed (the dask extra; in the dev extra)")
    pytest.importorskip("astropy", reason="FITS output needs astropy (the fits extra; in the dev extra)")
    from galaxy_synth.api import read_predictions

    assert _run(exported_study, catalogue, tmp_path / "one.csv", "--embeddings") == 0
    assert _run(exported_study, catalogue, tmp_path / "dask.fits", "--embeddings", "--dask", "local", "--workers", "2") == 0
    assert np.array_equal(np.load(tmp_path / "one.csv.embeddings.npy"), np.load(tmp_path / "dask.fits.embeddings.npy"))
    one, dask = pd.read_csv(tmp_path / "one.csv"), read_predictions(tmp_path / "dask.fits")
    assert dask["id"].tolist() == one["id"].tolist() and np.allclose(dask["p_merger"], one["p_merger"])
