"""CSV tables a user names or a command writes: one line for a table that cannot be read; atomic writes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from galaxy_common.errors import DataError
from galaxy_common.files import atomic_path


def read_table(path: Path, what: str = "table") -> pd.DataFrame:
    """A CSV a user named, or one line saying why it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        return pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} as CSV: {str(exc).splitlines()[0]}") from None


def write_table(df: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)
