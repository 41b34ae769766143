"""The chunk writers: whole chunks only, a run's signature, Parquet parts."""

import json

import numpy as np
import pandas as pd
import pytest

from galaxy_common.errors import DataError
from galaxy_synth.predict.chunk_writers import CsvChunkWriter, ParquetChunkWriter, PartsFolder


def _chunk(start: int, n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"g{i}" for i in range(start, start + n)], "p": [i / 10 for i in range(start, start + n)]})


def test_a_reopened_csv_drops_a_half_written_chunk_and_goes_on(tmp_path):
    out = tmp_path / "p.csv"
    w = CsvChunkWriter(out, "sig")
    w.append(_chunk(0))
    w.append(_chunk(3))
    with open(out, "ab") as f:
        f.write(b"g6,0.6\ng7,0.")  # a kill inside the third chunk's write
    again = CsvChunkWriter(out, "sig")
    assert again.chunks_done == 2 and not again.complete
    again.append(_chunk(6))
    again.finish()
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.concat([_chunk(0), _chunk(3), _chunk(6)], ignore_index=True))
    assert json.loads((tmp_path / "p.csv.progress.json").read_text())["complete"] is True


def test_another_run_or_a_foreign_file_is_never_mixed_in(tmp_path):
    out = tmp_path / "p.csv"
    CsvChunkWriter(out, "sig").append(_chunk(0))
    with pytest.raises(DataError, match="another model, input list or option set"):
        CsvChunkWriter(out, "other")
    foreign = tmp_path / "mine.csv"
    foreign.write_text("precious,data\n1,2\n")
    with pytest.raises(DataError, match="not written by a resumable predict"):
        CsvChunkWriter(foreign, "sig")
    assert foreign.read_text() == "precious,data\n1,2\n"
    before = out.read_bytes()
    replacing = CsvChunkWriter(out, "other", overwrite=True)
    assert out.read_bytes() == before  # nothing is removed until the new run writes its first chunk
    replacing.append(_chunk(9))
    pd.testing.assert_frame_equal(pd.read_csv(out), _chunk(9))


def test_parquet_parts_resume_after_the_last_whole_part(tmp_path):
    pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow (in the dev extra)")
    out = tmp_path / "p.parquet"
    w = ParquetChunkWriter(out, "sig")
    w.append(_chunk(0))
    (out / ".part-000001.parquet.tmp").write_bytes(b"half")  # a part whose write was killed: never renamed into place
    again = ParquetChunkWriter(out, "sig")
    assert again.chunks_done == 1
    again.append(_chunk(3))
    again.finish()
    pd.testing.assert_frame_equal(pd.read_parquet(out).reset_index(drop=True), pd.concat([_chunk(0), _chunk(3)], ignore_index=True))
    with pytest.raises(DataError, match="holds another run"):
        ParquetChunkWriter(out, "other")


def test_a_parts_folder_replaces_nothing_before_its_first_part_and_goes_on_after_the_last_whole_one(tmp_path):
    output = tmp_path / "out.npy"
    output.write_bytes(b"an earlier run")
    parts = PartsFolder(tmp_path / "out.parts", output, "sig", replace=True)
    assert output.read_bytes() == b"an earlier run" and not parts.folder.exists()  # a run failing now loses nothing
    parts.write(0, np.arange(3))
    assert not output.exists() and (parts.folder / "_signature").read_text() == "sig"
    parts.write(1, np.arange(2))
    (parts.folder / ".part-000002.npy.tmp").write_bytes(b"half")  # a kill inside the third part's write
    again = PartsFolder(parts.folder, output, "sig", replace=False)
    assert again.found_signature == "sig" and again.whole_parts() == 2
    again.write(2, np.arange(1))

    def concatenate(target, paths):
        with open(target, "wb") as f:
            np.save(f, np.concatenate([np.load(p) for p in paths]))

    again.assemble(3, concatenate)
    assert np.load(output).tolist() == [0, 1, 2, 0, 1, 0] and not parts.folder.exists()
