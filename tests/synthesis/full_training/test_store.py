"""One ground-truth interface for every storage: a key is stored once, the last write wins, reuse by architecture."""

from datetime import datetime, timezone

import pytest

from synthesis.full_training.store import (
    GroundTruthRecord,
    JournalGroundTruthStore,
    SqlGroundTruthStore,
    open_ground_truth,
)


def _record(trial=1, seed=0, accuracy=0.8, arch_key="k1", study="s"):
    return GroundTruthRecord(study_name=study, trial_number=trial, spec_hash="h", epochs=15, seed=seed, accuracy=accuracy,
                             balanced_accuracy=0.5, macro_f1=0.5, test_loss=0.4, confusion_json="[[1]]", wall_seconds=1.0,
                             device="cpu", weights_path="w.pt", created=datetime.now(timezone.utc), arch_key=arch_key)


@pytest.mark.parametrize("kind", ["sql", "journal"])
def test_both_backends_keep_one_record_per_key_and_find_twins(tmp_path, kind):
    url = f"sqlite:///{tmp_path / 's.db'}" if kind == "sql" else f"journal:{tmp_path / 's.journal'}"
    store = open_ground_truth(url)
    assert isinstance(store, SqlGroundTruthStore if kind == "sql" else JournalGroundTruthStore)
    store.put(_record())
    store.put(_record(accuracy=0.9))  # the same key again: replaced, not added
    store.put(_record(trial=2, seed=1, arch_key="k2"))
    again = open_ground_truth(url)  # another process reading the same storage
    assert again.get("s", 1, 15, 0).accuracy == 0.9 and again.get("s", 1, 15, 1) is None
    assert len(again.table("s")) == 2 and len(again.table("s", epochs=30)) == 0
    assert again.same_training("k2", 15, 1).trial_number == 2 and again.same_training("k2", 15, 0) is None
    assert isinstance(again.get("s", 1, 15, 0).created, datetime)
