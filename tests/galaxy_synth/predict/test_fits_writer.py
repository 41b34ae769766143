"""FITS output: the CSV's values in a binary table astropy reads, with units, descriptions and the model in the header;
whole chunks as parts, so a killed run resumes to the same table."""

import json
import sys

import numpy as np
import pandas as pd
import pytest

from galaxy_common.errors import DataError
from galaxy_synth.cli import main
from galaxy_synth.predict.fits_writer import FitsChunkWriter, column_meta, read_fits_table
from tests._kill import blocking_catalogue, kill_when

fits = pytest.importorskip("astropy.io.fits", reason="FITS output needs astropy (the fits extra; in the dev extra)")
Table = pytest.importorskip("astropy.table").Table


def _model(exported_study):
    return exported_study / "studies/exp/models/rank1"


def _chunk(start: int, n: int = 3, status: str = "ok") -> pd.DataFrame:
    return pd.DataFrame({"id": [f"g{i}" for i in range(start, start + n)], "ra": [f"{150 + i / 10}" for i in range(start, start + n)],
                         "status": [status * (i + 1) for i in range(n)], "p_a": np.arange(start, start + n, dtype=np.float32) / 10})


def test_parts_resume_after_the_last_whole_one_and_assemble_into_one_table(tmp_path):
    out = tmp_path / "p.fits"
    w = FitsChunkWriter(out, "sig", header={"GSVERS": ("9.9", "version")})
    w.append(_chunk(0))
    w.append(_chunk(3, status="error: unreadable"))  # a longer string: the column is as wide as its longest value
    (out.with_name("p.fits.parts") / ".part-000002.npy.tmp").write_bytes(b"half")  # a part whose write was killed
    assert not out.exists()  # nothing under the output's name until the run completes
    again = FitsChunkWriter(out, "sig", header={"GSVERS": ("9.9", "version")})
    assert again.chunks_done == 2 and not again.complete
    again.append(_chunk(6))
    again.finish()
    table = Table.read(out, character_as_bytes=False)
    want = pd.concat([_chunk(0), _chunk(3, status="error: unreadable"), _chunk(6)], ignore_index=True)
    assert table["id"].tolist() == want["id"].tolist() and table["status"].tolist() == want["status"].tolist()
    assert table["ra"].dtype.kind == "f" and np.allclose(table["ra"], want["ra"].astype(float))  # numbers, as read_csv reads them
    assert table["p_a"].dtype.itemsize == 4 and np.array_equal(table["p_a"], want["p_a"])
    assert table.meta["GSVERS"] == "9.9" and table.meta["PREDCHNK"] == 3 and not out.with_name("p.fits.parts").exists()
    done = FitsChunkWriter(out, "sig")
    assert done.complete and done.chunks_done == 3
    with pytest.raises(DataError, match="another model, input list or option set"):
        FitsChunkWriter(out, "other")


def test_a_foreign_fits_file_is_never_overwritten_without_overwrite(tmp_path):
    foreign = tmp_path / "mine.fits"
    fits.PrimaryHDU(np.zeros((2, 2))).writeto(foreign)
    before = foreign.read_bytes()
    with pytest.raises(DataError, match="not written by a resumable predict"):
        FitsChunkWriter(foreign, "sig")
    replacing = FitsChunkWriter(foreign, "sig", overwrite=True)
    assert foreign.read_bytes() == before  # nothing is removed until the new run writes its first chunk
    replacing.append(_chunk(0))
    replacing.finish()
    assert len(Table.read(foreign)) == 3


def test_text_that_is_not_ascii_comes_back_as_written(tmp_path):
    w = FitsChunkWriter(tmp_path / "p.fits", "sig")
    w.append(pd.DataFrame({"file": ["galáxia.png", "b.png"], "p_a": np.array([0.1, 0.2], np.float32)}))
    w.finish()
    assert read_fits_table(tmp_path / "p.fits")["file"].tolist() == ["galáxia.png", "b.png"]


def test_without_astropy_fits_output_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "astropy.io", None)  # import astropy.io fails as if it were not installed
    with pytest.raises(DataError, match=r"pip install 'galaxy-synth\[fits\]'"):
        FitsChunkWriter(tmp_path / "p.fits", "sig")


def test_a_fits_output_holds_the_csv_values_with_units_descriptions_and_the_model(exported_study, catalogue, tmp_path):
    import galaxy_synth

    model = _model(exported_study)
    common = ["predict", "--model", str(model), "--catalogue", str(catalogue / "cat.csv"), "--keep-columns", "ra,dec",
              "--chunk-size", "7", "--workers", "1", "--precision", "fp32", "--no-progress"]
    assert main([*common, "-o", str(tmp_path / "p.csv")]) == 0
    assert main([*common, "-o", str(tmp_path / "p.fits")]) == 0
    csv = pd.read_csv(tmp_path / "p.csv")
    with fits.open(tmp_path / "p.fits") as hdus:
        hdus.verify("exception")
        header = hdus[1].header
    table = Table.read(tmp_path / "p.fits", character_as_bytes=False)
    assert table.colnames == csv.columns.tolist() and len(table) == 40
    for name in csv.columns:
        got = table[name]
        if got.dtype.kind in "fiu":  # "u": a flag (reliable) as 1/0
            assert np.array_equal(np.asarray(got), csv[name].to_numpy(got.dtype), equal_nan=True), name
        else:
            assert got.tolist() == csv[name].astype(str).tolist(), name
    index = {name: i for i, name in enumerate(table.colnames, start=1)}
    assert header[f"TUNIT{index['ra']}"] == "deg" and str(table["dec"].unit) == "deg"
    assert header[f"TUNIT{index['p_merger']}"] == "" and f"TUNIT{index['id']}" not in header  # dimensionless; text has none
    assert header[f"TCOMM{index['p_merger']}"] == "calibrated probability of class merger"
    assert table["p_merger"].description == column_meta("p_merger")[1] and "catalogue" in table["id"].description
    card = json.loads((model / "card.json").read_text())
    assert header["MODSPEC"] == card["spec_hash"] and header["MODSTUDY"] == "exp" and len(header["MODWTS"]) == 16
    assert header["GSVERS"] == galaxy_synth.__version__ and header["DATE"][:4].isdigit()


def test_a_fits_run_killed_mid_way_resumes_to_the_same_table_and_embeddings(exported_study, catalogue, tmp_path):
    """Row 23 blocks (a named pipe), so the run is killed inside chunk 5 of 10; the rerun finishes the table."""
    model = str(_model(exported_study))
    cat, pipe = blocking_catalogue(catalogue, tmp_path / "w", row=23)
    out = tmp_path / "p.fits"
    argv = ["predict", "--model", model, "--catalogue", str(cat), "--keep-columns", "ra", "--chunk-size", "4",
            "--workers", "1", "--embeddings", "--no-progress", "-o", str(out)]
    parts = tmp_path / "p.fits.parts"
    kill_when(argv, lambda: len(list(parts.glob("part-*.npy"))) >= 5)
    assert len(list(parts.glob("part-*.npy"))) == 5 and not out.exists()
    pipe.unlink()
    pipe.symlink_to(catalogue / "img" / "g23.png")
    assert main([*argv[:-1], str(out)]) == 0
    clean = tmp_path / "clean.fits"
    assert main([*argv[:-1], str(clean)]) == 0
    resumed, straight = Table.read(out), Table.read(clean)
    assert resumed.meta.pop("DATE") and straight.meta.pop("DATE")
    assert resumed.meta == straight.meta and (resumed == straight).all() and len(resumed) == 40
    a, b = np.load(tmp_path / "p.fits.embeddings.npy"), np.load(tmp_path / "clean.fits.embeddings.npy")
    assert a.dtype == np.float16 and a.shape[0] == 40 and np.array_equal(a, b)
    assert not parts.exists() and not (tmp_path / "p.fits.embeddings.parts").exists()
