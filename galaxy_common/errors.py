"""Errors a user can fix: the CLI prints them as one line and exits non-zero."""


class GalaxySynthError(Exception):
    """Base class for problems with the user's input or settings (not bugs)."""


class DataError(GalaxySynthError):
    """The dataset cannot be used as given; the message names the file or row."""


class StudyMismatchError(GalaxySynthError):
    """A resumed study was created with settings that differ from the ones passed now."""
