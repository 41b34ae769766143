"""card.md: its usage snippet runs as written in the model folder."""

import os
import subprocess
import sys


def test_the_model_cards_snippet_runs_as_written(exported_study, tmp_path):
    import re
    import shutil

    folder = tmp_path / "rank1"
    shutil.copytree(exported_study / "studies/exp/models/rank1", folder)
    card = (folder / "card.md").read_text()
    (snippet,) = re.findall(r"```python\n(.*?)```", card, flags=re.S)
    assert "extra" in snippet  # this model takes z, z_err: the snippet passes them
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", snippet], cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "spiral_cw" in res.stdout  # printed the class probabilities
