"""predict: images in, a CSV out; TTA respects chirality; bad input is one line and writes nothing."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from galaxy_synth.cli import main
from galaxy_synth.predict import load_model_dir, predict_probabilities
from synthesis.data.synthetic import generate_galaxies
from synthesis.errors import DataError


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    imgs, _, extras, _ = generate_galaxies(n=6, size=48, seed=11)
    folder = tmp_path_factory.mktemp("imgs")
    rows = []
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(folder / f"g{i}.png")
        rows.append({"file": f"g{i}.png", "z": extras[i, 0], "z_err": extras[i, 1]})
    pd.DataFrame(rows).to_csv(folder.parent / "extra.csv", index=False)
    return folder, folder.parent / "extra.csv"


def test_predict_a_folder_matches_the_torchscript_file(exported_study, images, tmp_path):
    folder, extra = images
    out = tmp_path / "p.csv"
    model = exported_study / "studies/exp/models/rank1"
    assert main(["predict", "--model", str(model), str(folder), "--extra", str(extra), "--precision", "fp32", "-o", str(out)]) == 0
    df = pd.read_csv(out)
    loaded = load_model_dir(model)
    probs = df[[f"p_{c}" for c in loaded.class_names]].to_numpy()
    assert len(df) == 6 and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (df["predicted"] == [loaded.class_names[i] for i in probs.argmax(1)]).all()
    # The same images through model.ts (32 px: the embedded set is not cropped).
    x = torch.stack([torch.from_numpy(np.array(Image.open(folder / f"g{i}.png").resize((32, 32), Image.Resampling.BILINEAR)))
                     .permute(2, 0, 1).float() / 255 for i in range(6)])
    e = torch.tensor(pd.read_csv(extra)[["z", "z_err"]].to_numpy(), dtype=torch.float32)
    ts = torch.softmax(torch.jit.load(str(model / "model.ts"))(x, e), 1).detach().numpy()
    assert np.allclose(ts, probs, atol=1e-4)


def test_tta_is_rotation_invariant_and_flips_swap_the_mirror_pair(exported_study):
    loaded = load_model_dir(exported_study / "studies/exp/models/rank1")
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, size=(3, 32, 32, 3), dtype=np.uint8)
    extras = rng.normal(size=(3, 2)).astype(np.float32)
    base = predict_probabilities(loaded, imgs, extras, tta=True)
    rotated = predict_probabilities(loaded, np.ascontiguousarray(np.rot90(imgs, 1, axes=(1, 2))), extras, tta=True)
    mirrored = predict_probabilities(loaded, np.ascontiguousarray(imgs[:, :, ::-1]), extras, tta=True)
    assert np.allclose(rotated, base, atol=1e-5)
    cw, acw = loaded.class_names.index("spiral_cw"), loaded.class_names.index("spiral_acw")
    swapped = base.copy()
    swapped[:, [cw, acw]] = base[:, [acw, cw]]
    assert np.allclose(mirrored, swapped, atol=1e-5)  # a mirrored galaxy turns the other way
    plain = predict_probabilities(loaded, imgs, extras, tta=False)
    assert not np.allclose(plain, base)  # TTA really averaged something


def _expect_one_line(capsys, argv, pattern, out):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and pattern in err, err
    assert not out.exists()


def test_bad_inputs_are_one_line_and_write_nothing(exported_study, images, tmp_path, capsys):
    import shutil

    folder, extra = images
    out = tmp_path / "p.csv"
    model = tmp_path / "m"
    shutil.copytree(exported_study / "studies/exp/models/rank1", model)
    (model / "card.json").rename(model / "card.bak")
    _expect_one_line(capsys, ["predict", "--model", str(model), str(folder), "-o", str(out)], "card.json is missing", out)
    (model / "card.bak").rename(model / "card.json")
    pd.read_csv(extra).drop(columns="z_err").to_csv(tmp_path / "no_zerr.csv", index=False)
    _expect_one_line(capsys, ["predict", "--model", str(model), str(folder), "--extra", str(tmp_path / "no_zerr.csv"),
                              "-o", str(out)], "no column 'z_err'", out)
    _expect_one_line(capsys, ["predict", "--model", str(model), "-o", str(out)], "give IMAGEs", out)
    _expect_one_line(capsys, ["predict", "--model", str(model), str(folder), "-o", str(tmp_path / "nowhere" / "p.csv")],
                     "does not exist or is not writable", out)
    pd.DataFrame({"id": ["a"], "path": ["x.png"]}).to_csv(tmp_path / "cat.csv", index=False)
    _expect_one_line(capsys, ["predict", "--model", str(model), "--catalogue", str(tmp_path / "cat.csv"), "-o", str(out)],
                     "has no column 'file'", out)
    (model / "model.pt").write_bytes(b"\x00garbage")
    _expect_one_line(capsys, ["predict", "--model", str(model), str(folder), "--extra", str(extra), "--engine", "torch",
                              "-o", str(out)], "corrupt model.pt", out)
    if (model / "model.onnx").is_file():  # what the default engine reads where onnxruntime is installed
        (model / "model.onnx").write_bytes(b"\x00garbage")
        _expect_one_line(capsys, ["predict", "--model", str(model), str(folder), "--extra", str(extra), "--engine", "onnx",
                                  "-o", str(out)], "corrupt model.onnx", out)


def test_without_extra_inputs_the_training_means_are_used_and_flagged(exported_study, images, tmp_path, capsys):
    folder, extra = images
    model = exported_study / "studies/exp/models/rank1"
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(model), str(folder), "--precision", "fp32", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "no --extra given" in err and "training-set means" in err
    df = pd.read_csv(out)
    assert (df["extra_inputs"] == "training-set means (no --extra given)").all()
    loaded = load_model_dir(model)
    means = np.tile(np.array(loaded.card["extra_inputs"]["mean"], dtype=np.float32), (6, 1))
    from galaxy_synth.predict import read_inputs

    imgs = read_inputs(loaded, [[str(folder / f"g{i}.png")] for i in range(6)])
    want = predict_probabilities(loaded, imgs, means)
    assert np.allclose(df[[f"p_{c}" for c in loaded.class_names]].to_numpy(), want, atol=1e-5)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/galaxy-synth-pwned",))


def test_a_weights_file_carrying_code_is_refused_not_run(exported_study, tmp_path):
    import shutil
    from pathlib import Path

    model = tmp_path / "m"
    shutil.copytree(exported_study / "studies/exp/models/rank1", model)
    torch.save({"x": _Evil()}, model / "model.pt")
    Path("/tmp/galaxy-synth-pwned").unlink(missing_ok=True)
    with pytest.raises(DataError, match="corrupt model.pt"):
        load_model_dir(model)
    assert not Path("/tmp/galaxy-synth-pwned").exists()


def test_bf16_inference_stays_close_to_fp32(exported_study):
    from synthesis.hardware.device import cpu_bf16_flags

    if not cpu_bf16_flags():
        pytest.skip("this CPU has no bf16 instructions (avx512_bf16 or AMX)")
    loaded = load_model_dir(exported_study / "studies/exp/models/rank1")
    imgs, _, extras, _ = generate_galaxies(n=32, size=32, seed=5)
    x = imgs.astype(np.float32) / 255.0
    fp32 = predict_probabilities(loaded, x, extras, precision="fp32")
    bf16 = predict_probabilities(loaded, x, extras, precision="bf16")
    assert not np.array_equal(fp32, bf16)  # it really ran in bf16
    assert np.abs(fp32 - bf16).max() < 0.05 and np.allclose(bf16.sum(1), 1, atol=1e-4)


def test_the_onnx_engine_gives_the_torch_probabilities_with_and_without_tta(exported_study):
    pytest.importorskip("onnxruntime", reason="the ONNX engine needs onnxruntime (in the dev extra)")
    from galaxy_synth.onnx_engine import OnnxModel

    loaded = load_model_dir(exported_study / "studies/exp/models/rank1")
    onnx = OnnxModel.load(loaded)
    imgs, _, extras, _ = generate_galaxies(n=20, size=32, seed=6)
    x = imgs.astype(np.float32) / 255.0
    for tta in (False, True):
        want = predict_probabilities(loaded, x, extras, tta=tta)
        got = onnx.probabilities(x, extras, tta=tta)
        assert np.allclose(got, want, atol=1e-5), np.abs(got - want).max()
    assert not np.allclose(onnx.probabilities(x, extras[::-1].copy()), onnx.probabilities(x, extras))  # extras reach it
    with pytest.raises(DataError, match="runs fp32"):
        onnx.probabilities(x, extras, precision="bf16")


def test_engine_and_precision_are_chosen_from_the_folder_and_impossible_requests_are_one_line(exported_study, tmp_path):
    import shutil

    from galaxy_synth.catalogue import inference_settings
    from galaxy_synth.model_folder import read_model_folder

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
