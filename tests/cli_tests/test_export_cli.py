"""`lepton-tune export`: a real tiny study exported with --require, loaded in fresh processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lepton_tune.cli import main
from tests.bundle_tests._study import TinyStudy, cli, tiny_study

pytestmark = pytest.mark.slow

# Run in a fresh process: the trial's model rebuilt from the study (as the trial served it), the
# bundle through load_bundle, and the bundle through mlflow.pyfunc; all on the same test images.
FRESH = r"""
import json, sys
import numpy as np, optuna, mlflow.pyfunc
import lepton_tune
from lepton_tune.config import ENGINE_FIELDS, EngineConfig, load_study
from lepton_tune.engine import Engine
from lepton_tune.tuning._prepare import ModelPreparer

run_dir, bundle, model_uri = sys.argv[1], sys.argv[2], sys.argv[3]
from lepton_tune.bundle import read_manifest
manifest = read_manifest(bundle)
study = optuna.load_study(study_name=manifest["study"]["name"], storage=f"sqlite:///{run_dir}/study.db")
trial = study.trials[manifest["study"]["trial"]]
point = trial.user_attrs["point"]
spec = load_study(study.user_attrs["spec"])
preparer = ModelPreparer(spec)
prepared = preparer.prepare(point)
x_all, y_all = preparer.dataset.test
n = manifest["measured"]["accuracy_samples"]
x, y = np.ascontiguousarray(x_all[:n].numpy()), y_all[:n].numpy()
config = EngineConfig(**{k: point[k] for k in ENGINE_FIELDS if k in point})
with Engine(prepared.module, config, input_shape=tuple(x.shape[1:])) as eng:
    trial_out = eng.predict(x)
with lepton_tune.load_bundle(bundle) as eng:
    bundle_out = eng.predict(x)
    shards = len(eng.pids()) - 1
pyfunc_out = mlflow.pyfunc.load_model(model_uri).predict({"images": x}, params={"return_logits": True})
print(json.dumps({
    "trial": trial_out.tolist(), "bundle": bundle_out.tolist(), "pyfunc": np.stack(pyfunc_out["logits"]).tolist(),
    "labels": y.tolist(), "recorded_accuracy": trial.user_attrs["metrics"]["accuracy"], "shards": shards,
    "config_shards": config.shards, "manifest_engine": manifest["engine"] == config.model_dump(mode="json"),
}))
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> TinyStudy:
    return tiny_study(tmp_path_factory)


def _fresh(study: TinyStudy, model_uri: str, extra_env: dict[str, str] | None = None) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", FRESH, str(study.run_dir), str(study.bundle), model_uri],
        cwd=study.root,
        capture_output=True,
        text=True,
        timeout=300,
        env={**study.env, **(extra_env or {})},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_export_prints_choice_and_reason(study: TinyStudy) -> None:
    assert "chose trial" in study.export_stderr and "meeting the limits [accuracy>=0.5]" in study.export_stderr
    assert "wrote bundle bundle" in study.export_stderr
    manifest = yaml.safe_load((study.bundle / "lepton.yaml").read_text())
    assert manifest["study"]["name"] == "bundled" and "accuracy>=0.5" in manifest["study"]["selection"]


def test_fresh_process_serves_what_the_trial_measured(study: TinyStudy) -> None:
    import numpy as np

    got = _fresh(study, str(study.bundle))
    trial, bundle, pyfunc = (np.asarray(got[k]) for k in ("trial", "bundle", "pyfunc"))
    assert got["manifest_engine"] and got["shards"] == got["config_shards"]
    assert (bundle.argmax(1) == trial.argmax(1)).all() and np.allclose(bundle, trial, atol=1e-4)
    assert (pyfunc.argmax(1) == trial.argmax(1)).all() and np.allclose(pyfunc, trial, atol=1e-4)
    accuracy = float((bundle.argmax(1) == np.asarray(got["labels"])).mean())
    assert accuracy == pytest.approx(got["recorded_accuracy"], abs=1.01 / len(bundle))


def test_register_with_alias_loads_from_the_registry(study: TinyStudy, tmp_path: Path) -> None:
    """The registry is the MLflow store every command resolves: here MLFLOW_TRACKING_URI's, not the run dir's."""
    out = tmp_path / "reg"
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    proc = cli(
        "export",
        "--run-dir",
        str(study.run_dir),
        "--require",
        "accuracy>=0.5",
        "--out",
        str(out),
        "--register",
        "digits-clf",
        "--alias",
        "production",
        "--json",
        cwd=study.root,
        env={**study.env, "MLFLOW_TRACKING_URI": registry},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["registered"] == {
        "name": "digits-clf",
        "version": "1",
        "alias": "production",
        "uri": "models:/digits-clf@production",
    }
    assert "registered digits-clf version 1" in proc.stderr
    assert (tmp_path / "registry.db").is_file()
    got = _fresh(study, "models:/digits-clf@production", {"MLFLOW_TRACKING_URI": registry})
    import numpy as np

    assert (np.asarray(got["pyfunc"]).argmax(1) == np.asarray(got["trial"]).argmax(1)).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--require", "accuracy>=1.5"], "no front point meets accuracy>=1.5; closest:\n  trial "),
        (["--require", "accurcy>=0.5"], "unknown metric 'accurcy'"),
        (["--trial", "99"], "--trial 99: no COMPLETE trial with that number"),
        (["--trial", "0", "--alias", "x"], "--alias needs --register NAME"),
        (["--trial", "0", "--prefer", "throughput"], "--prefer applies to --require"),
    ],
)
def test_bad_choices_exit_2(
    study: TinyStudy, tmp_path: Path, args: list[str], message: str, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "--run-dir", str(study.run_dir), *args, "--out", str(tmp_path / "b")]) == 2
    assert message in capfd.readouterr().err
    assert not (tmp_path / "b").exists()


def test_existing_out_is_not_overwritten_without_force(
    study: TinyStudy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEPTON_TUNE_CACHE", study.env["LEPTON_TUNE_CACHE"])
    out = tmp_path / "b"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["export", "--run-dir", str(study.run_dir), "--trial", "0", "--out", str(out)]
    assert main(args) == 2
    assert "already exists and is not empty" in capfd.readouterr().err and (out / "keep.txt").exists()
    assert main([*args, "--force"]) == 2  # --force replaces a bundle, never someone's directory
    assert "is not a lepton-tune bundle" in capfd.readouterr().err and (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    assert main(args) == 0 and (out / "lepton.yaml").is_file()  # an empty directory is filled
    first = out.stat().st_ino
    assert main(args) == 2 and "(a lepton-tune bundle)" in capfd.readouterr().err
    assert main([*args, "--force"]) == 0  # a bundle is replaced
    assert out.stat().st_ino != first and (out / "lepton.yaml").is_file()  # a new directory, swapped in
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no temp or old dir left behind


@pytest.mark.parametrize("where", ["cwd", "parent", "run_dir", "home", "file"])
def test_force_never_deletes_what_export_did_not_write(
    study: TinyStudy, tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.tex").write_text("mine")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".bashrc").write_text("mine")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    out = {
        "cwd": ".",
        "parent": "..",
        "run_dir": str(study.run_dir),
        "home": str(tmp_path / "home"),
        "file": "thesis.tex",
    }[where]
    before = sorted(p.name for p in study.run_dir.iterdir())
    assert main(["export", "--run-dir", str(study.run_dir), "--trial", "0", "--out", out, "--force"]) == 2
    err = capfd.readouterr().err
    rule = {
        "cwd": "it is the current directory",
        "parent": "it is the current directory",
        "run_dir": "it is or holds the run directory",
        "home": "it is the home directory",
        "file": "is a file, not a bundle directory",
    }[where]
    assert f"lepton-tune export: error: {out}: " in err and rule in err and "Traceback" not in err
    assert (work / "thesis.tex").read_text() == "mine" and (tmp_path / "home" / ".bashrc").read_text() == "mine"
    assert sorted(p.name for p in study.run_dir.iterdir()) == before


@pytest.mark.slow
def test_export_confirms_the_point_in_a_fresh_process_and_records_both(study: TinyStudy) -> None:
    import optuna
    import yaml

    assert (
        "confirming trial" in study.export_stderr  # or the end of search had confirmed this pick already
        or "was already confirmed in a fresh process" in study.export_stderr
    )
    assert "confirmed as trial" in study.export_stderr
    manifest = yaml.safe_load((study.bundle / "lepton.yaml").read_text())
    measured = manifest["measured"]
    first, confirms = measured["first_metrics"], measured["confirms"]
    assert isinstance(confirms, int) and first and set(first) >= {"throughput", "latency_p95_ms"}
    loaded = optuna.load_study(study_name="bundled", storage=f"sqlite:///{study.run_dir / 'study.db'}")
    confirmation = next(t for t in loaded.trials if t.user_attrs.get("confirms") == confirms)
    assert manifest["study"]["trial"] == confirmation.number != confirms
    assert measured["metrics"]["throughput"] == confirmation.user_attrs["metrics"]["throughput"]
    assert first == loaded.trials[confirms].user_attrs["metrics"]  # the search's own measurement, kept beside it
    assert confirmation.user_attrs["point"] == loaded.trials[confirms].user_attrs["point"]
    shown = json.loads(cli("show", "--run-dir", "runs", "--json", cwd=study.root, env=study.env).stdout)
    assert confirmation.number not in [p["trial"] for p in shown["pareto"]]  # a re-measure never lists a point twice
