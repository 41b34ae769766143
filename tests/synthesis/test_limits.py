"""Each range stated once, checked by the settings and by the library alike."""

import pytest

from synthesis.data.dataset import load_dataset
from synthesis.errors import DataError, GalaxySynthError
from synthesis.limits import crop_problem, image_size_problem
from synthesis.settings import StudySettings, check_ranges


def test_the_same_words_from_the_settings_and_from_load_dataset():
    assert image_size_problem(8) is None and crop_problem(1.0) is None
    message = image_size_problem(4)
    with pytest.raises(GalaxySynthError, match="--size 4 is too small"):
        check_ranges(StudySettings(size=4))
    with pytest.raises(DataError) as exc:
        load_dataset(None, size=4)
    assert str(exc.value) == message
    with pytest.raises(GalaxySynthError, match="--crop 2"):
        check_ranges(StudySettings(crop=2.0))
