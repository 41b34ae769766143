"""The command line of a study, generated from the settings: one declaration per option (synthesis.settings), an option per declaration, and the way back (to_argv) for worker processes.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Iterable

from synthesis.settings import StudySettings

GROUP_TITLES = {"data": "data", "study": "study", "trials": "trials"}


def add_arguments(parser: argparse.ArgumentParser, groups: Iterable[str] = ("data", "study", "trials"),
                  only: Iterable[str] | None = None) -> None:
    """Add ``--option`` for every CLI setting of ``groups`` (or just the names in ``only``)."""
    only = set(only) if only is not None else None
    sections: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(StudySettings):
        meta = f.metadata
        if not meta.get("cli") or (only is None and meta["group"] not in groups) or (only is not None and f.name not in only):
            continue
        group = sections.setdefault(meta["group"], parser.add_argument_group(GROUP_TITLES.get(meta["group"], meta["group"])))
        flag = "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"help": meta["help"], "dest": f.name}
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        if f.name in ("merge", "drop"):
            kwargs.update(action="append", default=[])
        elif f.name in COMMA_LISTS:
            kwargs.update(type=_comma_list, default=None)
        else:
            kwargs.update(type=_cli_type(f), default=f.default)
        group.add_argument(flag, **kwargs)


def from_args(args: argparse.Namespace, **overrides: Any) -> StudySettings:
    """The settings the user gave on the command line (options the parser did not have keep their default)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(StudySettings)
              if f.metadata.get("cli") and hasattr(args, f.name)}
    if hasattr(args, "no_progress"):
        values["progress"] = not args.no_progress
    return StudySettings(**{**values, **overrides})


def to_argv(settings: StudySettings, omit: Iterable[str] = ("storage",)) -> list[str]:
    """The ``synth`` options that give back ``settings`` through :func:`from_args` (defaults left out).

    ``--workers`` starts its workers with this: every resolved setting travels, and the storage
    URL (which may hold a password) goes by :data:`STORAGE_ENV` instead of the command line.
    """
    argv: list[str] = []
    skip = set(omit)
    for f in dataclasses.fields(StudySettings):
        if not f.metadata.get("cli") or f.name in skip:
            continue
        value = getattr(settings, f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
        if value is None or value == default:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name in ("merge", "drop"):
            for item in value:
                argv += [flag, str(item)]
        elif f.name in COMMA_LISTS:
            argv += [flag, ",".join(value)]
        else:
            argv += [flag, repr(value) if isinstance(value, float) else str(value)]
    if not settings.progress:
        argv.append("--no-progress")
    return argv


COMMA_LISTS = ("extra_columns", "keep_columns")  # list settings given as one comma-separated option


def _comma_list(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _cli_type(f: dataclasses.Field) -> Any:
    annotation = str(f.type)
    if annotation.startswith("int"):
        return int
    if annotation.startswith("float"):
        return float
    return str
