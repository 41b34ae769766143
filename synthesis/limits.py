"""The ranges of the library's own arguments, read from the settings' declarations (one statement of each):
a user calling ``load_dataset`` directly hears the same words as one giving ``--size`` or ``--crop``."""

from __future__ import annotations

from synthesis.declarations import problem_of
from synthesis.settings import StudySettings


def image_size_problem(size: int | None) -> str | None:
    return problem_of(StudySettings, "size", size)


def crop_problem(crop: float | None) -> str | None:
    return problem_of(StudySettings, "crop", crop)
