"""What makes a resumed study the study left alone: proposals seeded per trial, interrupted trials rerun.

Two things would make a study interrupted (Ctrl-C, ``kill -9``) and resumed differ from one that ran
through:

- A sampler's random state lives in its process: a new process seeded as the first was proposes what
  the first proposed at its start, not what it would have proposed next. :class:`PerTrialSeed` gives
  every trial a fresh sampler seeded by the study's seed and the number of trials finished before it,
  so a trial's proposal depends on the study's history only, whichever process draws it.
- The trial in flight is lost. :func:`rerun_interrupted` queues each interrupted trial again: a trial
  failed by Ctrl-C (marked ``interrupted``), or one left ``RUNNING`` by a process that is gone
  (``kill -9``). One whose parameters were all drawn (:func:`mark_drawn`) is queued with them; one cut
  off while they were being drawn is queued with only those that were fixed before it started, and its
  sampler is seeded as the original's was, so it draws the rest again to the same values (queuing the
  half that was drawn would shift the sampler's random stream onto the other half). A trial's result
  does not depend on when it runs (the evaluation is seeded by the study, not by the trial), so running
  it later changes nothing. The interrupted trial is left out of the study's counts.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

DRAWN = "archon:drawn"
"""System attribute of a trial whose parameters have all been drawn."""

DRAWN_AFTER = "archon:drawn_after"
"""System attribute: the count of finished trials a trial's sampler was seeded with (a rerun inherits it)."""


def mark_drawn(trial: optuna.Trial) -> None:
    """Record that every parameter of ``trial`` has been drawn (a rerun may take them as they are)."""
    trial.storage.set_trial_system_attr(trial._trial_id, DRAWN, True)


class PerTrialSeed(optuna.samplers.BaseSampler):
    """A sampler drawing each trial's proposal from ``make(seed)``, seeded by the trials finished before it.

    Args:
        make: Builds the wrapped sampler (TPE, NSGA-II ...) from a seed.
        seed: The study's seed.
    """

    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._make, self._seed = make, seed
        self._by_trial: dict[int, optuna.samplers.BaseSampler] = {}

    def _for(self, study: optuna.Study, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        sampler = self._by_trial.get(trial._trial_id)
        if sampler is None:
            finished = trial.system_attrs.get(DRAWN_AFTER)
            if finished is None:
                finished = len(study.get_trials(deepcopy=False, states=FINISHED))
                study._storage.set_trial_system_attr(trial._trial_id, DRAWN_AFTER, finished)
            digest = hashlib.sha256(f"{self._seed}:{finished}".encode()).digest()
            sampler = self._make(int.from_bytes(digest[:4], "little"))  # numpy takes seeds below 2**32
            self._by_trial[trial._trial_id] = sampler
        return sampler

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """The trial's sampler prepares it."""
        self._for(study, trial).before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        """The trial's sampler's joint search space."""
        return self._for(study, trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """The trial's sampler's joint proposal."""
        return self._for(study, trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        """The trial's sampler's proposal for one parameter."""
        return self._for(study, trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        """The trial's sampler sees its end (and is dropped)."""
        sampler = self._by_trial.pop(trial._trial_id, None) or self._make(self._seed % 2**32)
        sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Nothing to reseed: every trial's sampler is seeded from the study's history."""


def _gone(worker: str | None) -> bool:
    """Whether the process ``host:pid`` that ran a trial is gone (one of another host is never presumed gone)."""
    if not worker:
        return True  # killed before it could say who it was
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return int(pid) == os.getpid()  # this very process is resuming it: not running any more


CARRIED = ("startup", "repair_of", "repair_depth")
"""User attributes an interrupted trial passes to its rerun (where it came from)."""


def rerun_interrupted(study: optuna.Study) -> list[int]:
    """Queue again every interrupted trial not yet rerun; returns their numbers.

    The study's user attribute ``rerun`` maps each interrupted trial's number to its rerun's (a finished
    trial can no longer be marked itself).
    """
    done: dict[str, int] = dict(study.user_attrs.get("rerun", {}))
    rerun = []
    for t in study.get_trials(deepcopy=False):
        if str(t.number) in done:
            continue
        killed = t.state == TrialState.RUNNING and _gone(t.user_attrs.get("worker"))
        if not (killed or (t.state == TrialState.FAIL and t.user_attrs.get("interrupted"))):
            continue
        if killed:
            study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        attrs = {k: t.user_attrs[k] for k in CARRIED if k in t.user_attrs}
        drawn = bool(t.system_attrs.get(DRAWN))
        params = dict(t.params) if drawn else dict(t.system_attrs.get("fixed_params") or {})
        study.enqueue_trial(params, user_attrs={**attrs, "rerun_of": t.number})
        queued = max(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)), key=lambda w: w.number)
        if not drawn:  # seeded as the original was: it draws the missing parameters to the same values
            before = t.system_attrs.get(DRAWN_AFTER)
            if before is None:
                before = sum(1 for u in study.get_trials(deepcopy=False, states=FINISHED) if u.number < t.number)
            study._storage.set_trial_system_attr(queued._trial_id, DRAWN_AFTER, before)
        done[str(t.number)] = queued.number
        rerun.append(t.number)
    if rerun:
        study.set_user_attr("rerun", done)
    return rerun


def superseded(study: optuna.Study) -> set[int]:
    """The numbers of the trials that were interrupted and queued again (their reruns stand for them)."""
    return {int(k) for k in study.user_attrs.get("rerun", {})}
