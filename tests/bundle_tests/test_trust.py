"""A bundle is data: a user-model factory it names is imported only when the loader is told to trust it."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from lepton_tune.bundle import export_bundle
from lepton_tune.exceptions import BundleError
from tests.bundle_tests._study import TinyStudy, cli

FACTORY = """
from pathlib import Path
Path(__file__).with_name("IMPORTED").write_text("the bundle ran this module")

def factory(num_classes):
    from lepton_tune.models import build_model
    return build_model("small_cnn", num_classes=num_classes, image_shape=(3, 16, 16))
"""


@pytest.fixture
def named_factory(bundle_copy: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The bundle copy, edited (and re-signed) to name ``evilpkg.mod:factory``; returns (bundle, package dir)."""
    pkg = tmp_path / "code" / "evilpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(FACTORY)
    path = bundle_copy / "lepton.yaml"
    manifest = yaml.safe_load(path.read_text())
    manifest["model"]["model_spec"] = {"python": "evilpkg.mod:factory", "weights": None, "train": True}
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    (bundle_copy / "lepton.sha256").write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  lepton.yaml\n")
    return bundle_copy, pkg


def _image(tmp_path: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (16, 16), (200, 10, 10)).save(tmp_path / "img.png")
    return tmp_path / "img.png"


def test_named_factory_is_refused_without_trust(
    study: TinyStudy, named_factory: tuple[Path, Path], tmp_path: Path
) -> None:
    bundle, pkg = named_factory
    env = {**study.env, "PYTHONPATH": f"{pkg.parent}:{study.env['PYTHONPATH']}"}
    env.pop("LEPTON_TUNE_TRUST_CODE", None)
    proc = cli("predict", str(bundle), str(_image(tmp_path)), cwd=study.root, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert (
        "model.model_spec.python: names the Python factory 'evilpkg.mod:factory'; loading it would import and run "
        "that code"
    ) in proc.stderr
    assert "pass --trust-code (or trust_code=True, or set LEPTON_TUNE_TRUST_CODE=1" in proc.stderr
    assert not (pkg / "IMPORTED").exists()
    loader = "import sys, mlflow.pyfunc; mlflow.pyfunc.load_model(sys.argv[1])"
    proc = subprocess.run(
        [sys.executable, "-c", loader, str(bundle)], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode != 0 and "LEPTON_TUNE_TRUST_CODE=1" in proc.stderr and not (pkg / "IMPORTED").exists()


def test_trust_code_flag_and_environment_allow_it(
    study: TinyStudy, named_factory: tuple[Path, Path], tmp_path: Path
) -> None:
    bundle, pkg = named_factory
    env = {**study.env, "PYTHONPATH": f"{pkg.parent}:{study.env['PYTHONPATH']}"}
    proc = cli("predict", str(bundle), str(_image(tmp_path)), "--trust-code", "--json", cwd=study.root, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (pkg / "IMPORTED").exists()
    (pkg / "IMPORTED").unlink()
    proc = cli(
        "predict", str(bundle), str(_image(tmp_path)), cwd=study.root, env={**env, "LEPTON_TUNE_TRUST_CODE": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (pkg / "IMPORTED").exists()


def test_export_refuses_a_factory_named_by_the_study_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEPTON_TUNE_TRUST_CODE", raising=False)
    pkg = tmp_path / "evilpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    study = SimpleNamespace(study_name="s", user_attrs={"spec": {"model": {"python": "evilpkg.mod:factory"}}})
    trial = SimpleNamespace(number=0, user_attrs={"point": {"backbone": "user"}, "metrics": {"accuracy": 1.0}})
    with pytest.raises(
        BundleError,
        match=r"study 's': spec\.model\.python: names the Python factory "
        r"'evilpkg\.mod:factory'.*pass --trust-code",
    ):
        export_bundle(study, trial, tmp_path / "out")
    assert not (pkg / "IMPORTED").exists() and not (tmp_path / "out").exists()
