"""``-o``'s suffix chooses the writer; one it does not know is one line before any work."""

import pytest

from galaxy_common.errors import DataError
from galaxy_synth.cli import main
from galaxy_synth.predict.chunk_writers import CsvChunkWriter, ParquetChunkWriter
from galaxy_synth.predict.output_formats import open_writer, output_format


@pytest.mark.parametrize("name", ["p.txt", "p.fits.gz", "p", "p.tsv"])
def test_an_unknown_suffix_is_one_line_before_any_work_and_writes_nothing(name, tmp_path, capsys):
    out = tmp_path / name
    missing_model = tmp_path / "no-such-model"  # checked later: the suffix is refused first
    assert main(["predict", "--model", str(missing_model), str(tmp_path), "--no-progress", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown output suffix" in err and ".fits" in err
    assert list(tmp_path.iterdir()) == []


def test_each_known_suffix_has_its_writer(tmp_path):
    assert [output_format(f"p{s}") for s in (".csv", ".CSV", ".parquet", ".fits", ".fit")] == \
        ["csv", "csv", "parquet", "fits", "fits"]
    assert isinstance(open_writer(tmp_path / "p.csv", "sig"), CsvChunkWriter)
    pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow (in the dev extra)")
    assert isinstance(open_writer(tmp_path / "p.parquet", "sig"), ParquetChunkWriter)
    with pytest.raises(DataError, match="unknown output suffix"):
        open_writer(tmp_path / "p.json", "sig")
