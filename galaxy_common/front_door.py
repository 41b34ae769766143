"""A package's front door that imports a public name's module only when the name is first used (PEP 562).

A package whose modules are heavy (torch, SQLAlchemy) can still name its whole public API in
``__all__`` and import cheaply: ``from package import name`` loads the one module that holds
``name``, and a torch-free module of the package stays torch-free when imported on its own.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping, Sequence


def public_names(homes: Mapping[str, Sequence[str]]) -> list[str]:
    """``__all__`` of a front door: every name of ``homes`` (module → the public names it holds)."""
    return [name for names in homes.values() for name in names]


def lazy_getattr(package: str, homes: Mapping[str, Sequence[str]]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: a public name is read from its module (relative to the
    package, e.g. ``"store"``) on first use, then kept on the package."""
    home_of = {name: module for module, names in homes.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in home_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home_of[name]}"), name)
        setattr(sys.modules[package], name, value)  # later look-ups are plain attribute reads
        return value

    return __getattr__
