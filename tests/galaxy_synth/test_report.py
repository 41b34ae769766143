"""The study report: a static page whose every figure loads in a real headless browser."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from galaxy_synth.cli import main

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def test_report_has_every_section_and_figure(exported_study, capsys):
    assert main(["report", "--results", str(exported_study), "--study", "exp"]) == 0
    page = (exported_study / "studies/exp/report" / "index.html").read_text()
    for heading in ("Data", "Search", "Proxy calibration", "Top models"):
        assert f"<h2>{heading}</h2>" in page
    for png in ("class_balance.png", "history.png", "anytime.png", "importances.png", "confusion_rank1.png",
                "confusion_rank2.png"):
        assert f'src="{png}"' in page and (exported_study / "studies/exp/report" / png).stat().st_size > 1000
    assert "galaxy-synth correlate" in page  # the calibration section says how to fill it
    assert "<h2>Ensemble</h2>" not in page and not (exported_study / "studies/exp/report/risk_coverage_ensemble.png").exists()


def test_report_shows_the_ensemble_beside_its_members_and_its_risk_coverage(ensemble_study):
    results = ensemble_study.parents[2]
    assert main(["report", "--results", str(results), "--study", "exp"]) == 0
    report = results / "studies/exp/report"
    page = (report / "index.html").read_text()
    section = page[page.index("<h2>Ensemble</h2>"):]
    card = json.loads((ensemble_study / "ensemble" / "card.json").read_text())
    for member in card["ensemble"]["members"]:
        metrics = card["test"]["members"][str(member["trial"])]
        assert f"<td>trial {member['trial']}</td><td>{member['weight']:.4g}</td><td>{metrics['accuracy']:.4g}</td>" in section
    ensemble = card["test"]["ensemble"]
    assert (f"<td>ensemble</td><td>1</td><td>{ensemble['accuracy']:.4g}</td><td>{ensemble['balanced_accuracy']:.4g}</td>"
            f"<td>{ensemble['log_loss']:.4g}</td><td>{ensemble['ece']:.4g}</td>"
            f"<td>{card['risk_coverage']['curves']['ensemble']['aurc']:.4g}</td>") in section
    assert f"{card['flops_per_image'] / 1e6:.1f} MFLOPs" in section and "Reliability threshold" in section
    assert "Against the best candidate by validation log-loss" in section and "least certain test galaxies" in section
    assert all(f"{name} {c['aurc']:.4f}" in section for name, c in card["risk_coverage"]["curves"].items())
    assert 'src="risk_coverage_ensemble.png"' in section and (report / "risk_coverage_ensemble.png").stat().st_size > 1000


def test_report_renders_in_headless_chromium(exported_study, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (Debian package 'chromium'; make browser / bash .ci/run installs it)")
    assert main(["report", "--results", str(exported_study), "--study", "exp"]) == 0
    url = (exported_study / "studies/exp/report" / "index.html").as_uri()
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert 'data-images-loaded="true"' in dom  # every <img> decoded (set by the page's load handler)
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, "--window-size=1200,2000", f"--screenshot={shot}", url], capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2000, 1200) and pixels.std() > 20  # drawn, not blank


def test_the_report_lists_the_best_trials_before_any_export(tmp_path):
    tiny = ["--results", str(tmp_path), "--study", "noexport", "--no-progress", "--size", "16", "--synthetic-n", "120",
            "--max-samples", "40", "--val-subset", "20", "--epochs", "1"]
    assert main(["synth", "--trials", "3", *tiny]) == 0
    assert main(["report", "--results", str(tmp_path), "--study", "noexport"]) == 0
    page = (tmp_path / "studies" / "noexport" / "report" / "index.html").read_text()
    assert "<h3>Best trials</h3>" in page and "None exported yet" in page
    assert page.count("<tr>") >= 4  # a header and the three trials
