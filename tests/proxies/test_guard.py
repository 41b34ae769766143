"""A model that predicts one class (or sits at chance) never ranks above one that learned."""

import math

from proxies.guard import COLLAPSE_SHIFT, guarded, is_collapsed


def test_one_predicted_class_or_chance_balanced_accuracy_is_collapsed():
    assert is_collapsed({"val_predicted_classes": 1, "val_balanced_acc": 0.6}, 4)
    assert is_collapsed({"val_predicted_classes": 3, "val_balanced_acc": 0.25}, 4)  # chance for 4 classes
    assert not is_collapsed({"val_predicted_classes": 3, "val_balanced_acc": 0.26}, 4)
    assert not is_collapsed({"val_predicted_classes": math.nan}, 4)  # unknown is not collapsed


def test_guarded_scores_keep_their_order_below_every_learned_one():
    assert guarded(0.99, True) < guarded(0.01, False)
    assert guarded(0.9, True) > guarded(0.8, True)
    assert guarded(0.5, True) == 0.5 - COLLAPSE_SHIFT and guarded(0.5, False) == 0.5
