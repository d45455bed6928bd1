"""A search measured while other processes burn the CPU: windows re-run, trials recorded as noisy."""

from __future__ import annotations

import optuna
import pytest

from tests.measure_tests._hog import cpu_hogs

from .conftest import TINY_STUDY_GUARDED, json_of, run_cli

pytestmark = pytest.mark.slow


def test_trials_measured_under_a_hog_are_noisy_and_never_on_the_front(tmp_path) -> None:
    study = TINY_STUDY_GUARDED.replace("n_trials: 4", "n_trials: 2").replace(
        "noise_threshold: 0.1", "noise_threshold: 0.1, noise_retries: 1"
    )
    (tmp_path / "tiny.yaml").write_text(study)
    env = {"LEPTON_TUNE_CACHE": str(tmp_path / "cache")}
    with cpu_hogs(2):
        summary = json_of(
            run_cli(
                "search", "tiny.yaml", "--run-dir", "runs", "--json", "--quiet", "--no-tracking", cwd=tmp_path, env=env
            )
        )
    assert summary["counts"]["noisy"] >= 1, summary["counts"]
    loaded = optuna.load_study(study_name="tiny", storage=summary["storage"])
    noisy = [t for t in loaded.trials if t.user_attrs.get("noisy")]
    for trial in noisy:
        assert trial.state == optuna.trial.TrialState.COMPLETE and trial.constraints["noisy"] > 0
        assert trial.user_attrs["lepton_status"] == "noisy" and "host busy" in trial.user_attrs["reason"]
        windows = trial.user_attrs["windows"]
        assert sum(bool(w.get("discarded")) for w in windows) == 1  # re-measured once, then kept as noisy
        assert all(w["foreign_load"] > 0.1 for w in windows)
    assert not {p["trial"] for p in summary["pareto"]} & {t.number for t in noisy}
    shown = run_cli("show", "--run-dir", "runs", cwd=tmp_path)
    assert shown.returncode == 0 and "noisy" in shown.stderr + shown.stdout
