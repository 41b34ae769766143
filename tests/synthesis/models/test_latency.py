"""The per-machine operator-time table: its keys, its cache, and predictions that add up and order networks."""

import pytest

from synthesis.models import ArchSpec, LatencyTable, StageSpec, build_model, count_params, operators


def _spec(block="residual", widths=(16, 32), depth=1, **kw):
    return ArchSpec(num_classes=4, stages=tuple(StageSpec(depth, w) for w in widths), block=block, image_size=32, **kw)


class CountingTimer:
    """A fake timer: seconds from the operator's key (deterministic), and which configurations it was asked for."""

    def __init__(self):
        self.asked = []

    def __call__(self, op, batch, device):
        self.asked.append((op.key, batch))
        return 1e-5 * (1 + len(op.key)) * batch


@pytest.mark.parametrize("block", ["plain", "residual", "inverted", "c4", "d4"])
@pytest.mark.parametrize("downsample", ["maxpool", "stride"])
def test_the_operators_are_the_network(block, downsample):
    spec = _spec(block, widths=(8, 16), depth=2, downsample=downsample, n_extra=2)
    parts = [op.build() for op in operators(spec)]
    assert sum(count_params(p) for p in parts) == count_params(build_model(spec))  # every layer, once


def test_a_second_network_of_the_same_operators_times_nothing_new(tmp_path):
    timer = CountingTimer()
    first = LatencyTable(tmp_path, timer=timer)
    first.predict(_spec(widths=(16, 32)))
    assert first.timed == len(timer.asked) == len(operators(_spec(widths=(16, 32))))
    timer.asked.clear()
    again = LatencyTable(tmp_path, timer=timer)  # another process, the same machine: read from the cache file
    assert again.predict(_spec(widths=(16, 32))) == first.predict(_spec(widths=(16, 32)))
    assert again.timed == 0 and timer.asked == []
    again.predict(_spec(widths=(16, 48)))  # only what differs: the second block and the head
    assert {key for key, _ in timer.asked} == {"residual 16->48 s1 @8", "head plain 48 @8 classes4 extra0/16"}


def test_another_machine_times_again(tmp_path, monkeypatch):
    timer = CountingTimer()
    here = LatencyTable(tmp_path, timer=timer)
    here.predict(_spec())
    monkeypatch.setattr("synthesis.hardware.device._cpu_model", lambda: "another processor")
    there = LatencyTable(tmp_path, timer=timer)
    assert there.key != here.key and there.path != here.path
    there.predict(_spec())
    assert there.timed == here.timed > 0  # nothing of the other machine's table is used
    assert LatencyTable(tmp_path, threads=2, timer=timer).key != there.key  # nor of another thread count


def test_the_prediction_is_the_sum_of_its_operators(tmp_path):
    table = LatencyTable(None, timer=CountingTimer())
    spec = _spec("inverted", n_extra=2)
    for batch in (1, 256):
        parts = [table.operator_ms(op, batch) for op in operators(spec)]
        assert table.predict(spec, batch) == pytest.approx(sum(parts))
        assert parts[0] == pytest.approx(1e3 * 1e-5 * (1 + len(operators(spec)[0].key)))  # ms per image
    assert set(table.predictions(spec)) == {"predicted_ms_per_image", "predicted_ms_per_image_at_batch"}


def test_a_wider_deeper_network_is_predicted_slower(tmp_path):
    table = LatencyTable(tmp_path)  # real timings, one thread: a few ms per configuration
    small, large = _spec("plain", widths=(8, 16)), _spec("plain", widths=(32, 64), depth=3)
    assert table.predict(large) > 2 * table.predict(small)
    assert (tmp_path / f"latency-{table.key}.json").is_file()
