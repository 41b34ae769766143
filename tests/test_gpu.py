"""End to end on a CUDA GPU: trials, calibration, export, predict. Skipped, saying why, without one.

CPU-only machines check the same code paths for device mistakes in tests/test_device_safety.py
(a 'meta' default device); this is the real thing where a GPU exists.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from galaxy_synth.cli import main

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(),
                                                 reason="no CUDA GPU on this machine (torch.cuda.is_available() is False)")]


def test_synth_correlate_export_predict_on_cuda(tmp_path, capsys):
    tiny = ["--results", str(tmp_path), "--no-progress", "--device", "cuda"]
    data = ["--size", "32", "--synthetic-n", "240", "--max-samples", "100", "--val-subset", "40", "--max-params", "300000"]
    assert main(["synth", "--trials", "6", "--objective", "composite", *data, *tiny]) == 0
    assert "CUDA" in capsys.readouterr().err  # the defaults line names the device
    assert main(["correlate", "--ground-truth", "6", "--full-epochs", "1", "--repeats", "2", *tiny]) == 0
    assert main(["export", "--top", "1", "--full-epochs", "1", *tiny]) == 0
    model = tmp_path / "studies" / "galaxy-synth" / "models" / "rank1"
    assert (model / "model.ts").is_file()
    # the exported TorchScript was traced on the CPU: it loads and runs without a GPU
    ts = torch.jit.load(str(model / "model.ts"), map_location="cpu")
    assert ts(torch.rand(1, 3, 32, 32), torch.zeros(1, 2)).shape == (1, 5)
    images = tmp_path / "imgs"
    images.mkdir()
    Image.fromarray(np.full((32, 32, 3), 100, np.uint8)).save(images / "a.png")
    assert main(["predict", "--model", str(model), "--tta", "-o", str(tmp_path / "p.csv"), str(images)]) == 0
