"""predict: images in, a CSV out; bad input is one line and writes nothing; missing extra inputs flagged."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from galaxy_synth.cli import main
from galaxy_synth.predict.network import load_model_dir, predict_probabilities
from synthesis.data.synthetic import generate_galaxies


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
    from galaxy_synth.predict.network import read_inputs

    imgs = read_inputs(loaded, [[str(folder / f"g{i}.png")] for i in range(6)])
    want = predict_probabilities(loaded, imgs, means)
    assert np.allclose(df[[f"p_{c}" for c in loaded.class_names]].to_numpy(), want, atol=1e-5)
