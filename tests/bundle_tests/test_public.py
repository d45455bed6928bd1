"""A shared bundle carries no storage host, user, password, absolute dataset path or host name."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tune.bundle._public import public_dataset, public_host, public_storage
from tests.bundle_tests._study import TinyStudy


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("postgresql+psycopg2://bob:s3cret@db.internal:5432/optuna?sslmode=require", "postgresql+psycopg2:///optuna"),
        ("mysql://root@10.0.0.5/studies", "mysql:///studies"),
        ("sqlite:////home/bob/private/runs/study.db", "sqlite:///study.db"),
        ("/home/bob/runs/study.journal", "study.journal"),
        (None, None),
    ],
)
def test_storage_keeps_kind_and_name_only(url: str | None, public: str | None) -> None:
    assert public_storage(url) == public


def test_dataset_path_is_relative_or_its_last_component(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert public_dataset({"kind": "imagefolder", "path": str(tmp_path / "data" / "pets")})["path"] == "data/pets"
    assert public_dataset({"kind": "imagefolder", "path": "/srv/bob/photos"})["path"] == "photos"
    assert public_dataset({"kind": "digits", "path": None})["path"] is None
    assert public_host({"hostname": "bob-laptop", "cores": 2}) == {"cores": 2}


def test_exported_bundle_holds_no_private_location(study: TinyStudy) -> None:
    text = "\n".join(p.read_text(errors="replace") for p in study.bundle.iterdir() if p.suffix != ".pt")
    assert str(study.root) not in text and "hostname" not in text
    assert "storage: sqlite:///study.db" in (study.bundle / "lepton.yaml").read_text()
