"""Which classes are mirror images of each other (a flip swaps their labels), and whether flips are allowed at all.
"""

from __future__ import annotations

import logging
import re
from typing import Sequence

_MIRROR_PATTERNS = [("_cw", "_acw"), ("_cw", "_ccw"), ("_clockwise", "_anticlockwise"), ("_clockwise", "_counterclockwise"), ("cw", "acw")]


def find_mirror_pairs(class_names: Sequence[str]) -> tuple[list[tuple[int, int]], list[str]]:
    """Detect mirror-image class pairs by name (``spiral_cw``/``spiral_acw`` etc.).

    Returns ``(pairs, unpaired_chiral)``: index pairs whose labels a flip must swap, and names
    that look chiral but have no partner (then flips must be disabled altogether).
    """
    names = list(class_names)
    pairs: list[tuple[int, int]] = []
    paired: set[int] = set()
    for a_suffix, b_suffix in _MIRROR_PATTERNS:
        for i, name in enumerate(names):
            if i in paired or not name.endswith(a_suffix) or name.endswith(b_suffix):
                continue
            partner = name[: len(name) - len(a_suffix)] + b_suffix
            if partner in names and names.index(partner) not in paired:
                j = names.index(partner)
                pairs.append((i, j))
                paired |= {i, j}
    chiral = re.compile(r"(^|_)(a?cw|ccw|clockwise|anticlockwise|counterclockwise)$")
    unpaired = [n for k, n in enumerate(names) if k not in paired and chiral.search(n)]
    return pairs, unpaired


log = logging.getLogger("galaxy_synth")


def mirror_policy(class_names: tuple[str, ...], warn: bool = True) -> tuple[list[tuple[int, int]], bool]:
    """Mirror-image class pairs, and whether flips are allowed (not when a chiral class is unpaired)."""
    pairs, unpaired = find_mirror_pairs(class_names)
    if unpaired and warn:
        log.warning("class(es) %s look chiral but have no mirror partner: flips disabled, rotations only", unpaired)
    return pairs, not unpaired
