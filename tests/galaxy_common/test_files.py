"""Atomic files: the target is either the old file or the whole new one, never half of one."""

import pytest

from galaxy_common.files import atomic_path, atomic_write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_a_write_replaces_the_file_with_the_users_permissions(tmp_path):
    target = tmp_path / "x.json"
    atomic_write_text(target, "{}")
    atomic_write_text(target, '{"a": 1}')
    assert target.read_text() == '{"a": 1}'
    assert target.stat().st_mode & 0o044  # readable by others, not mkstemp's 0600


def test_atomic_folder_swaps_in_a_whole_folder_and_leaves_the_old_one_when_writing_fails(tmp_path):
    import pytest

    from galaxy_common.files import atomic_folder

    folder = tmp_path / "model"
    assert atomic_folder(folder, lambda tmp: (tmp / "a.txt").write_text("one")) == 3
    assert (folder / "a.txt").read_text() == "one"

    def fails(tmp):
        (tmp / "a.txt").write_text("two")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_folder(folder, fails)
    assert (folder / "a.txt").read_text() == "one"  # the earlier folder stands, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folder left behind
