"""TPE and the promotion pruner see trials as the current scorer version scores them."""

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

import optuna.samplers._tpe.sampler as tpe_module
from synthesis.search.rescoring import Rescorer, RescoringPruner, RescoringSampler
from synthesis.search.scorer_versions import SIGNALS_ATTR, ScorerVersion, store_version
from synthesis.search.self_calibration import RungChoice

RUNGS = [2, 6]


def _metrics(val_acc: float, train_loss: float) -> dict:
    return {"val_acc": val_acc, "val_balanced_acc": 0.8, "val_predicted_classes": 2.0, "train_loss": train_loss,
            "val_loss": train_loss}


def _stopped_trial(x: float, val_acc: float, train_loss: float, **system) -> optuna.trial.FrozenTrial:
    """A trial stopped at the first rung: its stored score is val_acc; its signals say train_loss."""
    return create_trial(state=TrialState.PRUNED, params={"x": x}, distributions={"x": FloatDistribution(0, 1)},
                        intermediate_values={2: val_acc}, system_attrs=system,
                        user_attrs={"rung_stopped": True, SIGNALS_ATTR: {"2": {"metrics": _metrics(val_acc, train_loss)}}})


def _rescorer(study: optuna.Study, kind: str) -> Rescorer:
    """A rescorer whose prior is validation accuracy and whose current version scores rung 2 by ``kind``."""
    store_version(study, ScorerVersion(1, {"2": RungChoice(chosen=kind)}, [0]))
    rescorer = Rescorer()
    rescorer.configure(RUNGS, lambda rung, m: m["val_acc"], num_classes=2)
    rescorer.refresh(study)
    return rescorer


# val_acc ranks the trials 0 > 1 > ... ; train_loss ranks them the other way round
STORED = [(0.1 * i, 0.9 - 0.05 * i, 0.5 + 0.1 * i) for i in range(8)]


@pytest.mark.parametrize("wrapped", [True, False])
def test_tpe_is_shown_the_current_versions_scores(monkeypatch, wrapped):
    study = optuna.create_study(direction="maximize")
    for x, acc, loss in STORED:
        study.add_trial(_stopped_trial(x, acc, loss))
    tpe = optuna.samplers.TPESampler(n_startup_trials=2, seed=0)
    study.sampler = RescoringSampler(tpe, _rescorer(study, "sturdy")) if wrapped else tpe
    seen = []

    def spy(study_view, trials, n_below):
        seen.append({t.number: t.intermediate_values[2] for t in trials})
        return real_split(study_view, trials, n_below)

    real_split = tpe_module._split_trials
    monkeypatch.setattr(tpe_module, "_split_trials", spy)
    study.ask().suggest_float("x", 0, 1)
    assert seen, "TPE never split the trials"
    expected = {i: (-loss if wrapped else acc) for i, (_, acc, loss) in enumerate(STORED)}
    assert seen[-1] == pytest.approx(expected)  # what TPE ranked: −train_loss under the version, else the stored val_acc
    assert study.get_trials()[0].intermediate_values[2] == STORED[0][1]  # the storage itself is untouched


@pytest.mark.parametrize("wrapped", [True, False])
def test_promotion_compares_with_the_others_current_scores(wrapped):
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=3, bootstrap_count=0)
    study = optuna.create_study(direction="maximize")
    for i, (x, acc, loss) in enumerate(STORED[:3]):
        study.add_trial(_stopped_trial(x, acc, loss, completed_rung_0=acc))  # stored: 0.90, 0.85, 0.80
    study.pruner = RescoringPruner(pruner, _rescorer(study, "sturdy")) if wrapped else pruner
    trial = study.ask()
    trial.report(-0.4, step=2)  # its score under the current version (the objective scores with it): −train_loss 0.4
    promoted = not study.pruner.prune(study, study._storage.get_trial(trial._trial_id))
    # rescored, the others score −0.5, −0.6, −0.7 and it tops the four; as stored they score 0.90, 0.85, 0.80
    assert promoted == wrapped


def test_an_unconfigured_rescorer_and_a_trial_without_signals_pass_through():
    study = optuna.create_study(direction="maximize")
    study.add_trial(_stopped_trial(0.1, 0.9, 0.5))
    trial = study.get_trials()[0]
    assert Rescorer()(trial) is trial
    plain = create_trial(state=TrialState.COMPLETE, value=0.3)
    assert _rescorer(study, "sturdy")(plain) is plain
