"""Progressive growth: inheritance really copies, jitter has the stated scale, the stop rule, resume mid-growth.

Growth runs as a strategy of the one runner (synthesis.search.runner.run_study), as ``synth`` runs it.
"""

import dataclasses
import json

import optuna
import pytest
import torch
from optuna.trial import TrialState

import synthesis.search.progressive as prog
from synthesis.models.builder import build_model
from synthesis.models.spec import StageSpec
from synthesis.search.growth_report import write_growth_report
from synthesis.search.inheritance import inherit, jitter_
from synthesis.search.progressive import GrowthSettings, ProgressiveGrowth, base_spec, grow
from synthesis.search.runner import run_study
from synthesis.settings import StudySettings


def _trained_like(spec, seed=0):
    torch.manual_seed(seed)
    model = build_model(spec)
    with torch.no_grad():  # make BN stats and weights non-default, as after training
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.randn_like(t).abs() + 0.1 if "running_var" in name or "weight" in name else torch.randn_like(t))
    return model.eval()


def test_deepening_copies_every_parent_tensor_and_the_previous_block_into_the_new_one():
    parent_spec = base_spec(4, 32, 2, GrowthSettings())
    parent = _trained_like(parent_spec)
    child_spec, placement = grow(parent_spec, 16)
    assert placement == "deepen" and [s.depth for s in child_spec.stages] == [2]
    child = build_model(child_spec)
    origin = inherit(parent, parent_spec, child, child_spec)
    p, c = parent.state_dict(), child.state_dict()
    assert set(origin.values()) == {"parent", "previous block"}  # nothing left at fresh init
    for name, src in origin.items():
        want = p[name] if src == "parent" else p[name.replace("stages.0.2.", "stages.0.1.")]
        assert torch.equal(c[name], want), name
    # The inherited sub-network computes exactly the parent's function (before jitter).
    child.eval()
    x = torch.rand(3, 3, 32, 32)
    assert torch.equal(child.stages[0][:2](child.stem(x)), parent.stages[0][:2](parent.stem(x)))
    assert torch.equal(child.extra_mlp(torch.ones(3, 2)), parent.extra_mlp(torch.ones(3, 2)))


def test_a_new_stage_keeps_fresh_init_where_shapes_differ_and_rebuilds_the_classifier():
    parent_spec = base_spec(4, 32, 0, GrowthSettings())
    parent = _trained_like(parent_spec)
    child_spec, placement = grow(parent_spec, 64)
    assert placement == "new_stage" and [s.width for s in child_spec.stages] == [16, 64]
    child = build_model(child_spec)
    origin = inherit(parent, parent_spec, child, child_spec)
    assert origin["classifier.weight"] == "init" and child.classifier.in_features == 64
    assert origin["stages.1.1.body.0.weight"] == "init"  # 16→64 conv: no same-shape source
    assert all(origin[n] == "parent" for n in parent.state_dict() if not n.startswith("classifier"))
    four = dataclasses.replace(child_spec, stages=tuple(StageSpec(1, 16) for _ in range(4)))
    assert grow(four, 8) is None  # at 32 px a 5th stage would leave 1×1 pixels: no room


def test_jitter_is_three_percent_of_each_tensors_std_and_spares_constants():
    torch.manual_seed(0)
    model = build_model(base_spec(4, 32, 0, GrowthSettings(start_width=64)))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        model.stem[1].weight.fill_(1.0)  # a BatchNorm scale at its init: constant
    before["stem.1.weight"] = model.stem[1].weight.detach().clone()
    jitter_(model, 0.03, torch.Generator().manual_seed(1))
    conv = dict(model.named_parameters())["stages.0.1.body.0.weight"].detach()  # 64·64·9 values
    ratio = float((conv - before["stages.0.1.body.0.weight"]).std() / before["stages.0.1.body.0.weight"].std())
    assert ratio == pytest.approx(0.03, rel=0.05)
    assert torch.equal(model.stem[1].weight, before["stem.1.weight"])


def _tiny(tmp_path, study="grow"):
    return StudySettings(size=32, synthetic_n=200, max_samples=80, val_subset=40, objective="val_acc",
                         strategy="progressive", results=str(tmp_path), study=study, progress=False, precision="fp32")


def _grow(settings, growth=None):
    """Growth through the runner: the study, what growth found, the settings it ran with."""
    run = run_study(settings, ProgressiveGrowth(growth or GrowthSettings.of(settings)))
    return run.study, run.outcome, run.settings


def _scripted(score):
    """A stand-in for train_child: each child's trial scored ``score(step, spec)``, nothing trained."""

    def fake(trial, data, settings, proxy, epochs, jitter, child):
        return score(child.step, child.spec)

    return fake


def test_stops_at_the_first_step_that_does_not_improve(tmp_path, monkeypatch):
    scripted = {(0, 16): 0.5, (1, 16): 0.6, (1, 32): 0.7, (2, 16): 0.65, (2, 32): 0.69}

    monkeypatch.setattr(prog, "train_child", _scripted(lambda step, spec: scripted[(step, spec.stages[-1].width)]))
    _, result, _ = _grow(_tiny(tmp_path), GrowthSettings(widths=(16, 32), patience=1))
    assert [(s.step, s.channels, s.chosen) for s in result.steps] == [
        (0, 16, True), (1, 16, False), (1, 32, True), (2, 16, False), (2, 32, False)]
    assert "did not improve" in result.stop_reason and result.best_trial == 2
    json_path, png = write_growth_report(result, tmp_path)
    report = json.loads(json_path.read_text())
    assert {"layer", "k", "channels", "score"} <= set(report["steps"][0]) and png.stat().st_size > 1000


def test_patience_grows_past_a_step_that_does_not_improve_and_keeps_the_best(tmp_path, monkeypatch):
    # step 2 is worse than step 1; step 3 (grown from step 2's best) beats them all; step 4 and 5 do not.
    scores = {0: 0.5, 1: 0.7, 2: 0.65, 3: 0.8, 4: 0.75, 5: 0.74}

    monkeypatch.setattr(prog, "train_child", _scripted(lambda step, spec: scores[step] - 0.01 * (spec.stages[-1].width != 16)))
    _, result, _ = _grow(_tiny(tmp_path), GrowthSettings(widths=(16, 32), patience=2))
    best = max(result.steps, key=lambda s: s.score)
    assert best.step == 3 and result.best_trial == best.trial  # found after a step that did not improve
    assert max(s.step for s in result.steps) == 5 and "2 step(s) in a row" in result.stop_reason
    _, first_only, _ = _grow(_tiny(tmp_path / "p1", "grow1"), GrowthSettings(widths=(16, 32), patience=1))
    assert max(s.step for s in first_only.steps) == 2  # patience 1 stops where the old strategy stopped


def test_patience_does_not_end_growth_while_the_seed_network_is_still_the_best(tmp_path, monkeypatch):
    # Steps 1 and 2 fall just short of the seed network (a small validation split); step 3 beats it.
    scores = {0: 0.70, 1: 0.69, 2: 0.68, 3: 0.75, 4: 0.74, 5: 0.73, 6: 0.72}

    monkeypatch.setattr(prog, "train_child", _scripted(lambda step, spec: scores[step] - 0.001 * (spec.stages[-1].width != 16)))
    _, result, _ = _grow(_tiny(tmp_path), GrowthSettings(widths=(16, 32), patience=2))
    best = max(result.steps, key=lambda s: s.score)
    assert best.step == 3 and result.best_trial == best.trial  # not the seed network (trial 0)
    assert max(s.step for s in result.steps) == 5 and "2 step(s) in a row" in result.stop_reason
    # Where no grown network ever beats the seed, growth runs to --max-blocks instead of stopping at step 2.
    monkeypatch.setitem(scores, 3, 0.60)
    monkeypatch.setitem(scores, 4, 0.60)
    _, never, _ = _grow(_tiny(tmp_path / "p2", "grow2"), GrowthSettings(widths=(16, 32), patience=2, max_blocks=5))
    assert max(s.step for s in never.steps) == 4 and "max-blocks 5" in never.stop_reason and never.best_trial == 0


def test_the_seed_network_is_one_block_of_the_smallest_growth_width(tmp_path, monkeypatch):
    seen = []

    def fake(trial, data, settings, proxy, epochs, jitter, child):
        seen.append((child.step, child.spec.stem_width, [s.width for s in child.spec.stages]))
        return 0.5 + 0.1 * (child.step == 0)

    monkeypatch.setattr(prog, "train_child", fake)
    _grow(dataclasses.replace(_tiny(tmp_path), growth_widths="32,8,16", max_blocks=2))
    assert seen[0] == (0, 8, [8]) and {w[-1] for s, _, w in seen if s == 1} == {8, 16, 32}


class _Killed(BaseException):
    """Stands for a SIGKILL: Optuna does not catch it, so the child's trial stays RUNNING, as after a real kill."""


@pytest.mark.parametrize("interrupt", [_Killed, KeyboardInterrupt], ids=["killed", "ctrl-c"])
def test_resume_mid_growth_reuses_finished_children_and_redoes_the_killed_one(tmp_path, monkeypatch, interrupt):
    settings = _tiny(tmp_path)
    growth = GrowthSettings(widths=(16, 32), max_blocks=2)
    real = prog.train_child
    calls = []

    def dies_on_third(*args, **kwargs):
        calls.append(args[-1])
        if len(calls) == 3:
            raise interrupt()  # the child's trial exists, then the process dies (or Ctrl-C) mid-training
        return real(*args, **kwargs)

    monkeypatch.setattr(prog, "train_child", dies_on_third)
    with pytest.raises(interrupt):
        _grow(settings, growth)
    monkeypatch.setattr(prog, "train_child", real)
    study, result, _ = _grow(settings, growth)
    trials = study.get_trials()
    # killed: failed on resume, then trained again; Ctrl-C: failed and queued again at once, the copy trained on resume
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]  # base + two children: none trained twice
    assert [s.trial for s in result.steps] == [0, 1, 3] and result.steps[0].chosen
    child = next(t for t in complete if t.user_attrs["growth"]["step"] == 1)
    assert child.user_attrs["growth"]["parent_trial"] == 0 and child.user_attrs["growth"]["inherited"] > 0
    assert trials[3].user_attrs["growth"]["width"] == trials[2].user_attrs["growth"]["width"] == 32
    for t in complete:  # like any TPE trial: rank / correlate / export read these
        assert {"arch", "train_config", "metrics", "history", "val_acc"} <= set(t.user_attrs)
    assert optuna.load_study(study_name="grow", storage=f"sqlite:///{tmp_path / 'study.db'}").user_attrs[
        "galaxy_synth"]["settings"]["strategy"] == "progressive"


def test_grown_children_are_promoted_by_the_same_successive_halving_as_tpe_trials(tmp_path):
    from optuna.trial import TrialState

    from synthesis.search.ranking import metrics_table
    from synthesis.search.trials import finished

    settings = _tiny(tmp_path, study="promote").replace(objective=None, epochs=1, fidelities="1,2")
    study, result, resolved = _grow(settings, GrowthSettings(widths=(16, 32), max_blocks=4))
    assert resolved.objective == "val_acc"  # picked by the strategy itself, without --objective
    children = [t for t in study.get_trials() if "growth" in t.user_attrs]
    assert all(finished(t) for t in children) and len(children) >= 4
    first = sorted(children, key=lambda t: t.number)[:2]  # η = 2 = the bootstrap: no competition yet, stopped
    assert all(t.state == TrialState.PRUNED and t.user_attrs["rung_stopped"] for t in first)
    assert all("rung: stopped" in t.user_attrs["prune_reason"] for t in first)
    for t in children:  # every child was reported at the first budget, as a TPE trial is
        assert "1" in t.user_attrs["rungs"]
    promoted = [t for t in children if t.state == TrialState.COMPLETE]
    assert result.promotions == [{"trial": t.number, "budget": 2, "score": t.value} for t in promoted]
    assert all(t.user_attrs["rungs"]["2"]["score"] == pytest.approx(t.value) for t in promoted)
    assert promoted, "with these seeds a later child beats the first budget's competition"
    assert metrics_table(study).iloc[0]["trial"] in {t.number for t in promoted}  # the highest budget first
    again, _, _ = _grow(settings, GrowthSettings(widths=(16, 32), max_blocks=4))  # resumed: nothing retrained
    assert len(again.get_trials()) == len(study.get_trials())


def test_bad_growth_widths_are_one_line_before_any_data_is_loaded(tmp_path, monkeypatch):
    from synthesis.errors import GalaxySynthError

    import synthesis.search.runner as runner

    monkeypatch.setattr(runner, "prepare_study", lambda *a, **k: pytest.fail("data loaded before the widths were checked"))
    with pytest.raises(GalaxySynthError, match="--growth-widths must be comma-separated integers"):
        run_study(dataclasses.replace(_tiny(tmp_path), growth_widths="16,abc"))


def test_growth_adds_equivariant_blocks_inheriting_the_parents_group_filters():
    growth = GrowthSettings(block="c4")
    parent_spec = base_spec(4, 32, 2, growth)
    parent = _trained_like(parent_spec)
    for width, placement in ((16, "deepen"), (32, "new_stage")):
        child_spec, where = grow(parent_spec, width)
        assert where == placement and child_spec.block == "c4"
        child = build_model(child_spec)
        origin = inherit(parent, parent_spec, child, child_spec)
        assert all(origin[n] == "parent" for n in parent.state_dict() if not n.startswith("classifier"))
        if placement == "deepen":  # the new block starts as a copy of the one before it: nothing fresh
            assert set(origin.values()) == {"parent", "previous block"}
            child.eval()
            x = torch.rand(3, 3, 32, 32)
            assert torch.equal(child.stages[0][:2](child.stem(x)), parent.stages[0][:2](parent.stem(x)))
            with torch.no_grad():  # the grown network still ignores quarter turns (its random weights make huge logits)
                torch.testing.assert_close(child(torch.rot90(x, 1, (-2, -1)), torch.ones(3, 2)), child(x, torch.ones(3, 2)),
                                           atol=1e-5, rtol=1e-5)


def test_growth_block_c4_grows_c4_children_and_d4_is_refused_where_spirals_have_mirror_images(tmp_path, monkeypatch):
    from synthesis.errors import GalaxySynthError

    seen = []

    def fake(trial, data, settings, proxy, epochs, jitter, child):
        seen.append(child.spec.block)
        return 0.5 + 0.1 * child.step

    monkeypatch.setattr(prog, "train_child", fake)
    _grow(dataclasses.replace(_tiny(tmp_path), growth_block="c4", growth_widths="16,32", max_blocks=2))
    assert seen and set(seen) == {"c4"}
    with pytest.raises(GalaxySynthError, match="multiples of 8"):
        GrowthSettings.of(dataclasses.replace(_tiny(tmp_path), growth_block="d4", growth_widths="12,24"))
    with pytest.raises(GalaxySynthError, match="spiral_cw/spiral_acw"):  # the embedded set's spirals of both senses
        _grow(dataclasses.replace(_tiny(tmp_path / "d4"), growth_block="d4", study="d4"))
