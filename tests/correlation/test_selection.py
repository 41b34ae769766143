import numpy as np
import pandas as pd

from correlation.selection import select_for_ground_truth


def test_selection_takes_the_top_and_spreads_over_the_range():
    scores = pd.Series(np.arange(100.0), index=np.arange(100) + 1000)
    chosen = select_for_ground_truth(scores, k=10, top=3)
    assert len(chosen) == len(set(chosen)) == 10
    assert {1099, 1098, 1097} <= set(chosen)
    picked = scores[chosen]
    assert picked.min() < 10 and ((picked > 30) & (picked < 70)).any()  # bottom and middle are represented
    assert select_for_ground_truth(scores.iloc[:5], k=10) == [1004, 1003, 1002, 1001, 1000]
