"""The torch network of a model folder: TTA respects chirality, weights never run code, bf16 stays close."""

import numpy as np
import pytest
import torch

from galaxy_synth.predict.network import load_model_dir, predict_probabilities
from synthesis.data.synthetic import generate_galaxies
from synthesis.errors import DataError


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
