"""Streaming catalogue inference: chunked equals in-memory, resumes after kill -9 without lost or duplicated rows,
unreadable images are a status, Parquet and Dask give the same rows, unfamiliar images are flagged."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from galaxy_synth.cli import main
from galaxy_synth.predict.catalogue_rows import rows_from_catalogue
from galaxy_synth.predict.network import load_model_dir, predict_probabilities, read_inputs
from synthesis.errors import DataError


def _model(exported_study):
    return exported_study / "studies/exp/models/rank1"


def test_chunked_output_equals_the_whole_catalogue_in_memory(exported_study, catalogue, tmp_path):
    model = _model(exported_study)
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(model), "--catalogue", str(catalogue / "cat.csv"), "--keep-columns", "ra,dec",
                 "--chunk-size", "7", "--workers", "1", "--precision", "fp32", "--no-progress", "-o", str(out)]) == 0
    df = pd.read_csv(out)
    cat = pd.read_csv(catalogue / "cat.csv")
    assert df["id"].tolist() == cat["id"].tolist() and np.allclose(df["ra"], cat["ra"])  # catalogue order, columns carried
    loaded = load_model_dir(model)
    images = read_inputs(loaded, [[str(catalogue / f)] for f in cat["file"]])
    want = predict_probabilities(loaded, images, cat[["z", "z_err"]].to_numpy(np.float32))
    assert np.allclose(df[[f"p_{c}" for c in loaded.class_names]].to_numpy(), want, atol=1e-5)
    assert (df["status"] == "ok").all() and df["domain_z"].notna().all()
    assert df["predictive_entropy"].notna().all() and "reliable" in df and "mutual_information" not in df
    assert json.loads((tmp_path / "p.csv.progress.json").read_text())["complete"] is True


def test_a_rerun_after_kill_9_resumes_with_no_lost_or_duplicated_row(exported_study, catalogue, tmp_path):
    """Row 23 is a named pipe: opening it blocks, so the run is killed (-9) exactly inside chunk 5 of 10."""
    model = _model(exported_study)
    cat = pd.read_csv(catalogue / "cat.csv")
    work = tmp_path / "w"
    (work / "img").mkdir(parents=True)
    for f in cat["file"]:
        (work / f).symlink_to(catalogue / f)
    (work / "img" / "g23.png").unlink()
    os.mkfifo(work / "img" / "g23.png")
    cat.to_csv(work / "cat.csv", index=False)
    out = tmp_path / "p.csv"
    argv = [sys.executable, "-m", "galaxy_synth", "predict", "--model", str(model), "--catalogue", str(work / "cat.csv"),
            "--chunk-size", "4", "--workers", "1", "--no-progress", "-o", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    journal = tmp_path / "p.csv.progress.json"
    deadline = time.time() + 120
    while time.time() < deadline and not (journal.is_file() and json.loads(journal.read_text())["chunks"] >= 5):
        time.sleep(0.2)
    time.sleep(0.5)  # it is now blocked in chunk 5 (rows 20-23)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    state = json.loads(journal.read_text())
    assert state["chunks"] == 5 and state["complete"] is False
    with open(out, "ab") as f:
        f.write(b"G020,img/g20.png,ok,half a ro")  # as if the kill had come in the middle of a write
    (work / "img" / "g23.png").unlink()
    (work / "img" / "g23.png").symlink_to(catalogue / "img" / "g23.png")
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "resumed after 5 chunk(s)" in res.stdout
    got = pd.read_csv(out)
    clean = tmp_path / "clean.csv"
    assert main(["predict", "--model", str(model), "--catalogue", str(work / "cat.csv"), "--chunk-size", "4",
                 "--workers", "1", "--no-progress", "-o", str(clean)]) == 0
    pd.testing.assert_frame_equal(got, pd.read_csv(clean))
    assert got["id"].is_unique and len(got) == 40


def test_an_unreadable_image_is_a_status_and_a_count_not_a_crash(exported_study, catalogue, tmp_path, capsys):
    cat = pd.read_csv(catalogue / "cat.csv")
    (tmp_path / "broken.png").write_text("not an image")
    cat.loc[5, "file"] = str(tmp_path / "broken.png")
    cat.loc[6, "file"] = str(tmp_path / "missing.png")
    cat["file"] = [f if os.path.isabs(f) else str(catalogue / f) for f in cat["file"]]
    cat.to_csv(tmp_path / "cat.csv", index=False)
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(_model(exported_study)), "--catalogue", str(tmp_path / "cat.csv"),
                 "--chunk-size", "8", "--workers", "1", "--no-progress", "-o", str(out)]) == 0
    df = pd.read_csv(out)
    assert "2 unreadable" in capsys.readouterr().out
    assert df.loc[5, "status"].startswith("error: corrupt or unreadable image") and "not found" in df.loc[6, "status"]
    assert df.loc[[5, 6], "p_elliptical"].isna().all() and (df.drop(index=[5, 6])["status"] == "ok").all()


def test_parquet_parts_two_processes_and_a_local_dask_cluster_give_the_same_rows(exported_study, catalogue, tmp_path):
    pytest.importorskip("distributed", reason="the Dask run needs dask.distributed (the dask extra; in the dev extra)")
    pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow (in the dev extra)")
    model = str(_model(exported_study))
    common = ["predict", "--model", model, "--catalogue", str(catalogue / "cat.csv"), "--chunk-size", "6", "--no-progress"]
    assert main([*common, "--workers", "1", "-o", str(tmp_path / "one.csv")]) == 0
    assert main([*common, "--workers", "2", "-o", str(tmp_path / "two.csv")]) == 0
    assert main([*common, "--dask", "local", "--workers", "2", "-o", str(tmp_path / "dask.csv")]) == 0
    assert main([*common, "--workers", "1", "-o", str(tmp_path / "p.parquet")]) == 0
    one = pd.read_csv(tmp_path / "one.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "two.csv"), one)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "dask.csv"), one)  # row for row
    parquet = pd.read_parquet(tmp_path / "p.parquet")
    assert len(list((tmp_path / "p.parquet").glob("part-*.parquet"))) == 7
    assert parquet["id"].tolist() == one["id"].tolist() and np.allclose(parquet["p_merger"], one["p_merger"])


def test_a_second_run_of_a_finished_output_does_nothing_and_another_run_refuses_to_overwrite(exported_study, catalogue,
                                                                                              tmp_path, capsys):
    model = str(_model(exported_study))
    out = tmp_path / "p.csv"
    common = ["predict", "--model", model, "--catalogue", str(catalogue / "cat.csv"), "--workers", "1", "--no-progress"]
    assert main([*common, "-o", str(out)]) == 0
    before = out.read_bytes()
    assert main([*common, "-o", str(out)]) == 0 and "already complete" in capsys.readouterr().out
    assert out.read_bytes() == before
    assert main([*common, "--tta", "-o", str(out)]) == 2  # another option set: not silently mixed in
    assert "another model, input list or option set" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main([*common, "--tta", "--overwrite", "-o", str(out)]) == 0 and out.read_bytes() != before


def test_images_unlike_the_training_set_are_flagged_per_row_and_warned_once(exported_study, catalogue, tmp_path, capsys):
    rng = np.random.default_rng(0)
    folder = tmp_path / "bright"
    folder.mkdir()
    for i in range(6):  # bright, noisy fields: nothing like the dark-sky procedural galaxies
        Image.fromarray(rng.integers(150, 255, size=(48, 48, 3), dtype=np.uint8)).save(folder / f"b{i}.png")
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(_model(exported_study)), str(folder), "--workers", "1", "--no-progress",
                 "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("not like the training images") == 1
    assert (pd.read_csv(out)["domain_z"] > 3).all()
    familiar = tmp_path / "f.csv"
    assert main(["predict", "--model", str(_model(exported_study)), "--catalogue", str(catalogue / "cat.csv"),
                 "--workers", "1", "--no-progress", "-o", str(familiar)]) == 0
    assert "not like the training images" not in capsys.readouterr().err
    assert pd.read_csv(familiar)["domain_z"].median() < 3


def test_real_sdss_cutouts_are_flagged_for_a_model_trained_on_the_procedural_set(exported_study, tmp_path, capsys):
    from pathlib import Path

    gz1 = Path(__file__).resolve().parents[4] / "shared" / "data" / "gz1_dev" / "images"
    files = sorted(gz1.glob("*.jpg"))[:40]
    if not files:
        pytest.skip(f"real SDSS images not found in {gz1} (../shared/data/gz1_dev)")
    folder = tmp_path / "sdss"
    folder.mkdir()
    for f in files:
        (folder / f.name).symlink_to(f)
    assert main(["predict", "--model", str(_model(exported_study)), str(folder), "--workers", "1", "--no-progress",
                 "-o", str(tmp_path / "p.csv")]) == 0
    assert "not like the training images" in capsys.readouterr().err


def test_catalogue_rows_resolve_paths_against_the_csv_and_take_extras_from_it(exported_study, catalogue):
    rows = rows_from_catalogue(load_model_dir(_model(exported_study)), catalogue / "cat.csv", ["ra"])
    assert rows.paths[0] == (str(catalogue / "img/g0.png"),) and rows.extras.shape == (40, 2) and rows.extras_note is None
    assert rows.carried.columns.tolist() == ["id", "file", "ra"]


def test_a_catalogue_run_reads_the_folder_builds_rows_and_decodes_without_importing_torch(exported_study, catalogue):
    """What runs before the weights load — the run's settings, the card, the rows, the precision, the decode workers'
    task — imports no torch (seconds of start-up), so decoding fills the cores while the network loads."""
    script = f"""
import sys
from galaxy_synth.predict import PredictSettings
from galaxy_synth.predict.catalogue import _decode_args, inference_settings
from galaxy_synth.predict.catalogue_rows import rows_from_catalogue
from galaxy_synth.predict.model_folder import read_model_folder
from synthesis.data.decode import decode_rows
settings = PredictSettings({str(_model(exported_study))!r}, catalogue={str(catalogue / "cat.csv")!r}, keep_columns=("ra",),
                           precision="auto", engine="auto")  # as the command line asks
model = read_model_folder(settings.model)
rows = rows_from_catalogue(model, settings.catalogue, settings.keep_columns)
inference_settings(model, settings.precision, settings.engine)
images, status = decode_rows(_decode_args(model, rows.paths[:3]))
assert status == ["ok"] * 3 and images.shape[0] == 3
print("torch" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_chunks_are_submitted_before_the_first_result_is_asked_for():
    from galaxy_synth.predict.catalogue import _bounded

    submitted = []
    results = _bounded(list(range(10)), lambda job: submitted.append(job) or job, lambda f: f * 10, ahead=4)
    assert submitted == [0, 1, 2, 3]  # the pool decodes while the caller loads the model
    assert [v for _, v in results] == [j * 10 for j in range(10)] and submitted == list(range(10))


def test_a_corrupt_model_pt_leaves_the_previous_output_as_it_was(exported_study, catalogue, tmp_path, capsys):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(_model(exported_study), model)
    out = tmp_path / "p.csv"
    common = ["predict", "--model", str(model), "--catalogue", str(catalogue / "cat.csv"), "--no-progress", "--chunk-size", "8"]
    assert main([*common, "--workers", "1", "-o", str(out)]) == 0
    before = out.read_bytes()
    (model / "model.pt").write_bytes(b"\x00garbage")
    assert main([*common, "--workers", "2", "--tta", "--engine", "torch", "--overwrite", "-o", str(out)]) == 2  # the pool
    assert "corrupt model.pt" in capsys.readouterr().err
    assert out.read_bytes() == before
    if (model / "model.onnx").is_file():
        (model / "model.onnx").write_bytes(b"\x00garbage")
        assert main([*common, "--workers", "2", "--tta", "--engine", "onnx", "--overwrite", "-o", str(out)]) == 2
        assert "corrupt model.onnx" in capsys.readouterr().err
        assert out.read_bytes() == before


def test_the_onnx_engine_classifies_a_catalogue_with_no_torch_in_the_process(exported_study, catalogue, tmp_path):
    """Its rows equal the torch engine's, and the run never imports torch (seconds of start-up, ≈ 0.7 GB)."""
    pytest.importorskip("onnxruntime", reason="the ONNX engine needs onnxruntime (in the dev extra)")
    model, cat = _model(exported_study), catalogue / "cat.csv"
    torch_out, onnx_out = tmp_path / "t.csv", tmp_path / "o.csv"
    assert main(["predict", "--model", str(model), "--catalogue", str(cat), "--workers", "1", "--engine", "torch",
                 "--precision", "fp32", "--no-progress", "-o", str(torch_out)]) == 0
    script = f"""
import sys
from galaxy_synth.cli import main
assert main(["predict", "--model", {str(model)!r}, "--catalogue", {str(cat)!r}, "--workers", "2", "--chunk-size", "8",
             "--engine", "onnx", "--tta", "--no-progress", "-o", {str(tmp_path / "tta.csv")!r}]) == 0
assert main(["predict", "--model", {str(model)!r}, "--catalogue", {str(cat)!r}, "--workers", "2", "--chunk-size", "8",
             "--no-progress", "-o", {str(onnx_out)!r}]) == 0
print("torch" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
    a, b = pd.read_csv(torch_out), pd.read_csv(onnx_out)
    probs = [c for c in a.columns if c.startswith("p_")]
    assert a["id"].tolist() == b["id"].tolist() and np.allclose(a[probs], b[probs], atol=1e-5)
    assert (a["predicted"] == b["predicted"]).all()


def test_engine_and_precision_are_chosen_from_the_folder_and_impossible_requests_are_one_line(exported_study, tmp_path):
    import shutil

    from galaxy_synth.predict.catalogue import inference_settings
    from galaxy_synth.predict.model_folder import read_model_folder

    pytest.importorskip("onnxruntime", reason="the ONNX engine needs onnxruntime (in the dev extra)")
    model = read_model_folder(exported_study / "studies/exp/models/rank1")
    assert inference_settings(model, "fp32", "auto") == ("fp32", "onnx")
    assert inference_settings(model, "fp32", "torch") == ("fp32", "torch")
    bare = tmp_path / "bare"
    shutil.copytree(model.folder, bare)
    (bare / "model.onnx").unlink()
    assert inference_settings(read_model_folder(bare), "fp32", "auto") == ("fp32", "torch")
    with pytest.raises(DataError, match="has no model.onnx"):
        inference_settings(read_model_folder(bare), "fp32", "onnx")
    with pytest.raises(DataError, match="runs fp32"):
        inference_settings(model, "bf16", "onnx")


def test_an_output_begun_before_the_uncertainty_columns_is_refused_not_mixed(exported_study, catalogue, tmp_path, capsys):
    """An older release's partial CSV (its journal's signature without the uncertainty columns) is another run:
    refused without --overwrite, never appended to with more columns than its header; --overwrite redoes it."""
    import hashlib

    from galaxy_synth.predict.catalogue import _model_signature
    from galaxy_synth.predict.catalogue_rows import rows_from_catalogue
    from galaxy_synth.predict.model_folder import read_model_folder

    model, out = _model(exported_study), tmp_path / "p.csv"
    args = ["predict", "--model", str(model), "--catalogue", str(catalogue / "cat.csv"), "--chunk-size", "7",
            "--workers", "1", "--precision", "fp32", "--engine", "torch", "--no-progress", "-o", str(out)]
    assert main(args) == 0
    header = read_model_folder(model)
    rows = rows_from_catalogue(header, catalogue / "cat.csv")
    old = hashlib.sha256(f"{rows.signature()}|{_model_signature(header)}|False|fp32|7".encode()).hexdigest()[:16]
    journal = tmp_path / "p.csv.progress.json"
    state = json.loads(journal.read_text())
    journal.write_text(json.dumps({**state, "signature": old, "chunks": 1, "complete": False}))
    before = out.read_bytes()
    assert main(args) != 0 and "another model" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main([*args, "--overwrite"]) == 0 and "predictive_entropy" in pd.read_csv(out)
