"""The tuning report: the Pareto front, the plots written for real SQLite studies, and opening a study."""

import re

import optuna
import pytest
from hypothesis import given
from hypothesis import strategies as st
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from archon.tune.report import StudyNotFoundError, _trials_figure, load_study, pareto_front, write_report

PNG = b"\x89PNG\r\n\x1a\n"
DISTRIBUTIONS = {"n": IntDistribution(1, 64), "model": CategoricalDistribution(["small", "large"])}

optuna.logging.set_verbosity(optuna.logging.WARNING)


def trial(accuracy=None, flops=None, *, feasible=True, state=TrialState.COMPLETE, values=None, **attrs):
    user_attrs = {"feasible": feasible, **attrs}
    if accuracy is not None:
        user_attrs |= {"accuracy": accuracy, "flops": flops, "problems": 8}
    complete = state == TrialState.COMPLETE
    return create_trial(
        state=state,
        values=(values or [accuracy]) if complete else None,
        params={"n": 4, "model": "small"},
        distributions=DISTRIBUTIONS,
        user_attrs=user_attrs,
    )


def numbers(trials):
    return [t.number for t in trials]


def sqlite_study(tmp_path, rows, *, directions=("maximize",), objectives=("accuracy",), budget=None, name="study"):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(storage=storage, study_name=name, directions=list(directions))
    study.set_user_attr("objectives", list(objectives))
    study.set_user_attr("budget", budget or {"flops": None, "latency": None})
    for row in rows:
        study.add_trial(row)
    return study


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 1000, path


def in_html(html, number):
    return re.search(rf"trial #{number}\b", html) is not None


# --- pareto_front: a pure function of the trials -------------------------------------------------------------------


def test_front_excludes_dominated_trials_and_is_sorted_by_cost():
    trials = [trial(0.4, 2e6), trial(0.8, 4e6), trial(0.5, 1e6), trial(0.7, 8e6), trial(0.5, 3e6)]
    front = pareto_front(trials)
    assert [(t.user_attrs["flops"], t.user_attrs["accuracy"]) for t in front] == [(1e6, 0.5), (4e6, 0.8)]


def test_front_excludes_infeasible_pruned_failed_and_incomplete_attrs():
    best_but_infeasible = trial(0.99, 1e3, feasible=False)
    best_but_pruned = trial(0.98, 1e3, state=TrialState.PRUNED)
    failed = trial(state=TrialState.FAIL)
    no_flops = create_trial(value=0.97, user_attrs={"accuracy": 0.97, "feasible": True})
    nan_accuracy = trial(float("nan"), 1e3, values=[0.0])
    ok = trial(0.5, 1e6)
    assert pareto_front([best_but_infeasible, best_but_pruned, failed, no_flops, nan_accuracy, ok]) == [ok]


def test_front_keeps_exact_ties_but_not_equal_accuracy_at_higher_cost():
    a, b = trial(0.6, 2e6), trial(0.6, 2e6)
    dearer = trial(0.6, 3e6)
    cheaper_worse = trial(0.5, 2e6)
    front = pareto_front([dearer, a, cheaper_worse, b])
    assert len(front) == 2 and all(t is a or t is b for t in front)


def test_front_falls_back_to_constraints_when_feasible_is_missing():
    over = create_trial(value=0.9, user_attrs={"accuracy": 0.9, "flops": 1e6}, constraints={"flops": 5.0})
    under = create_trial(value=0.5, user_attrs={"accuracy": 0.5, "flops": 2e6}, constraints={"flops": -1.0})
    unconstrained = create_trial(value=0.4, user_attrs={"accuracy": 0.4, "flops": 1e5})
    assert pareto_front([over, under, unconstrained]) == [unconstrained, under]


def test_front_on_another_cost_axis():
    fast = trial(0.5, 9e6, latency=0.1)
    cheap = trial(0.5, 1e6, latency=0.9)
    assert pareto_front([fast, cheap], cost="latency") == [fast]
    assert pareto_front([fast, cheap]) == [cheap]


point = st.tuples(st.integers(0, 5), st.integers(1, 5), st.booleans())


@given(st.lists(point, max_size=25))
def test_front_equals_the_brute_force_definition(points):
    trials = [trial(a / 5, float(c), feasible=f) for a, c, f in points]

    def dominates(p, q):
        (ap, cp), (aq, cq) = p, q
        return ap >= aq and cp <= cq and (ap, cp) != (aq, cq)

    feasible = [(t.user_attrs["accuracy"], t.user_attrs["flops"], t) for t in trials if t.user_attrs["feasible"]]
    expected = [t for a, c, t in feasible if not any(dominates((a2, c2), (a, c)) for a2, c2, _ in feasible)]
    front = pareto_front(trials)
    assert sorted(map(id, front)) == sorted(map(id, expected))
    assert [t.user_attrs["flops"] for t in front] == sorted(t.user_attrs["flops"] for t in front)


# --- write_report on real SQLite studies ----------------------------------------------------------------------------


def test_single_objective_report(tmp_path):
    rows = [
        trial(0.50, 1e6),  # 0: front
        trial(0.40, 2e6),  # 1: dominated by 0
        trial(0.80, 4e6, full_accuracy=0.75),  # 2: front
        trial(0.95, 2e7, feasible=False),  # 3: over the budget
        trial(0.60, 3e6, state=TrialState.PRUNED),  # 4: pruned
        trial(state=TrialState.FAIL),  # 5
        trial(0.80, 4e6),  # 6: ties 2
        trial(0.70, 8e6),  # 7: dominated by 2
    ]
    sqlite_study(tmp_path, rows, budget={"flops": 1e7, "latency": None})
    summary = write_report(load_study(tmp_path), tmp_path / "report")

    assert [f["number"] for f in summary["front"]] == [0, 2, 6]
    assert summary["front"][1] == {
        "number": 2,
        "accuracy": 0.8,
        "flops": 4e6,
        "full_accuracy": 0.75,
        "params": {"n": 4, "model": "small"},
    }
    assert summary["cost"] == "flops"
    assert summary["trials"] == {"complete": 6, "pruned": 1, "fail": 1}
    assert set(summary["files"]) == {"front_png", "front_html", "trials_png"}
    for name in ("front_png", "trials_png"):
        assert_png(summary["files"][name])
    html = summary["files"]["front_html"].read_text()
    assert all(in_html(html, n) for n in (0, 2, 6))
    assert not any(in_html(html, n) for n in (1, 3, 4, 7))
    assert "model = small" in html
    assert not re.search(r"<script[^>]*\bsrc=", html)  # plotly.js is inlined: the page works offline
    assert any("importance skipped" in note and "6 complete trials" in note for note in summary["notes"])


def test_multi_objective_report_uses_the_second_objective(tmp_path):
    def row(accuracy, flops, latency):
        return trial(accuracy, flops, latency=latency, values=[accuracy, latency])

    rows = [row(0.5, 1e6, 0.30), row(0.5, 2e6, 0.10), row(0.9, 3e6, 0.40), row(0.6, 1e5, 0.35)]
    study = sqlite_study(
        tmp_path,
        rows,
        directions=("maximize", "minimize"),
        objectives=("accuracy", "latency"),
        budget={"flops": None, "latency": 0.5},
    )
    summary = write_report(study, tmp_path / "report")

    assert summary["cost"] == "latency"
    assert [f["number"] for f in summary["front"]] == [1, 3, 2]  # on FLOPs it would be [3, 2]
    assert summary["front"][0]["latency"] == 0.10 and summary["front"][0]["flops"] == 2e6
    assert_png(summary["files"]["front_png"])
    assert_png(summary["files"]["trials_png"])
    html = summary["files"]["front_html"].read_text()
    assert all(in_html(html, n) for n in (1, 2, 3)) and not in_html(html, 0)
    assert "latency per problem" in html


def test_no_feasible_trial_skips_the_front_but_draws_every_trial(tmp_path):
    study = sqlite_study(tmp_path, [trial(0.9, 2e7, feasible=False), trial(0.3, 1e6, state=TrialState.PRUNED)])
    summary = write_report(study, tmp_path / "report")
    assert summary["front"] == []
    assert set(summary["files"]) == {"trials_png"}
    assert not (tmp_path / "report" / "pareto_front.html").exists()
    assert any(note.startswith("pareto_front skipped") for note in summary["notes"])


def test_the_trials_plot_draws_the_budget_and_the_groups():
    trials = [trial(0.5, 1e6), trial(0.9, 2e7, feasible=False), trial(0.6, 3e6, state=TrialState.PRUNED)]
    ax = _trials_figure(trials, trials[:1], cost="flops", limit=1e7).axes[0]
    assert [line.get_xdata()[0] for line in ax.get_lines()] == [1e7]
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["feasible (1)", "infeasible (1)", "pruned (1)", "Pareto front (1)", "budget (1e+07)"]
    assert ax.get_xscale() == "log"
    assert _trials_figure(trials, [], cost="flops", limit=None).axes[0].get_lines() == []


# --- parameter importances ------------------------------------------------------------------------------------------


def tuned_study(tmp_path, *, params, n_trials):
    def objective(t):
        x = t.suggest_float("x", 0.0, 1.0)
        for name in params[1:]:
            t.suggest_float(name, 0.0, 1.0)
        flops = 1e6 * (1 + x)
        t.set_user_attr("accuracy", x)
        t.set_user_attr("flops", flops)
        t.set_constraint("flops", flops - 1.8e6)
        return x

    study = sqlite_study(tmp_path, [])
    study.sampler = optuna.samplers.RandomSampler(seed=0)
    study.optimize(objective, n_trials=n_trials)
    return study


def test_importances_rank_the_parameter_that_drives_accuracy(tmp_path):
    summary = write_report(tuned_study(tmp_path, params=["x", "y"], n_trials=30), tmp_path / "report")
    assert_png(summary["files"]["importance_png"])
    assert summary["importances"]["x"] > summary["importances"]["y"]
    assert not any("importance" in note for note in summary["notes"])
    # feasibility came from the constraint alone: no trial above 1.8e6 FLOPs is on the front
    assert summary["front"] and all(f["flops"] <= 1.8e6 for f in summary["front"])


def test_importances_skipped_with_one_parameter(tmp_path):
    summary = write_report(tuned_study(tmp_path, params=["x"], n_trials=20), tmp_path / "report")
    assert "importance_png" not in summary["files"]
    assert summary["importances"] == {}
    assert any("importance skipped" in note and "1 parameter" in note for note in summary["notes"])


def test_importances_skipped_with_two_trials(tmp_path):
    summary = write_report(tuned_study(tmp_path, params=["x", "y"], n_trials=2), tmp_path / "report")
    assert "importance_png" not in summary["files"]
    assert any("2 complete trials" in note for note in summary["notes"])
    assert not (tmp_path / "report" / "importance.png").exists()


def test_importances_threshold_is_an_option(tmp_path):
    summary = write_report(
        tuned_study(tmp_path, params=["x", "y"], n_trials=6), tmp_path / "report", min_importance_trials=5
    )
    assert_png(summary["files"]["importance_png"])


# --- load_study -----------------------------------------------------------------------------------------------------


def test_load_study_without_a_database(tmp_path):
    with pytest.raises(StudyNotFoundError, match=r"optuna\.db: no such file") as err:
        load_study(tmp_path)
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)
    assert not (tmp_path / "optuna.db").exists()  # looking did not create one


def test_load_study_with_no_study(tmp_path):
    optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    with pytest.raises(StudyNotFoundError, match="holds no study"):
        load_study(tmp_path)


def test_load_study_with_several_studies_needs_a_name(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    for name in ("beta", "alpha"):
        optuna.create_study(storage=storage, study_name=name)
    with pytest.raises(StudyNotFoundError, match=r"2 studies \(alpha, beta\)"):
        load_study(tmp_path)
    assert load_study(tmp_path, study_name="beta").study_name == "beta"
    with pytest.raises(StudyNotFoundError, match="no study named 'gamma'"):
        load_study(tmp_path, study_name="gamma")


def test_load_study_from_an_explicit_storage(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sqlite_study(elsewhere, [trial(0.5, 1e6)], name="only")
    study = load_study(tmp_path, storage=f"sqlite:///{elsewhere / 'optuna.db'}")
    assert study.study_name == "only" and len(study.trials) == 1
