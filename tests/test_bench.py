"""Every benchmark script starts (its --help) from the installed package: no sys.path patching, no stale imports."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_the_bench_script_starts(script):
    assert "sys.path.insert" not in script.read_text()
    res = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                         cwd=ROOT / "bench")
    assert res.returncode == 0, res.stderr[-1500:]
