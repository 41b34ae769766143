"""Every module path the code and docs mention exists: a moved module leaves no stale name behind."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("galaxy_common", "proxies", "synthesis", "correlation", "galaxy_synth")
FILE_PATH = re.compile(r"\b((?:%s|bench|tests)/[\w/]+\.py)\b" % "|".join(PACKAGES))
DOTTED = re.compile(r"(?<![\w.])((?:%s)(?:\.\w+)+)" % "|".join(PACKAGES))  # not tests.synthesis.…
NOT_NAMES = (".py", ".md", ".json", ".pt", ".csv")


def _texts() -> list[Path]:
    skip = {".venv", ".git", "fixtures", "results", "build"}
    return [p for p in ROOT.rglob("*") if p.suffix in (".py", ".md") and not skip & set(p.relative_to(ROOT).parts)]


def _module_file(parts: list[str]) -> Path | None:
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _resolves(reference: str) -> bool:
    """The longest prefix that is a module, and the first name after it defined (or re-exported) there."""
    parts = reference.split(".")
    for i in range(len(parts), 0, -1):
        found = _module_file(parts[:i])
        if found is None:
            continue
        if i == len(parts) or parts[i].startswith("__"):
            return True
        name = re.escape(parts[i])
        return re.search(rf"(def|class)\s+{name}\b|^\s*{name}\s*[:=]|[\"']{name}[\"']|import .*\b{name}\b",
                         found.read_text(), re.M) is not None
    return False


def test_every_mentioned_module_path_exists():
    stale = []
    for path in _texts():
        text = path.read_text(errors="ignore")
        stale += [f"{path.relative_to(ROOT)}: {m}" for m in FILE_PATH.findall(text) if not (ROOT / m).exists()]
        stale += [f"{path.relative_to(ROOT)}: {m}" for m in DOTTED.findall(text)
                  if not m.endswith(NOT_NAMES) and m != "proxies.calibrations" and not _resolves(m.rstrip("."))]
    assert not stale, "\n".join(sorted(set(stale)))
