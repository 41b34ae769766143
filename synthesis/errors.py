"""The errors a user can fix (one line, exit code 2): defined in galaxy_common, the lowest layer, so that every
package raises the same ones; this is where users import them from (``synthesis.errors.GalaxySynthError``)."""

from galaxy_common import DataError, GalaxySynthError, StudyMismatchError

__all__ = ["DataError", "GalaxySynthError", "StudyMismatchError"]
