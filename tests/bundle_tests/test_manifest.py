"""Refusals: tampered, missing or unlisted-path files, newer format versions, not a bundle at all."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lepton_tune.bundle import FORMAT_VERSION, read_manifest
from lepton_tune.bundle._load import open_bundle
from lepton_tune.exceptions import BundleError
from tests.bundle_tests._study import TinyStudy, cli


def _edit(bundle: Path, change) -> None:  # type: ignore[no-untyped-def]
    path = bundle / "lepton.yaml"
    manifest = yaml.safe_load(path.read_text())
    change(manifest)
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))


def test_manifest_lists_weights_with_checksum(study: TinyStudy) -> None:
    manifest = read_manifest(study.bundle)
    assert manifest["format_version"] == FORMAT_VERSION
    (entry,) = [f for f in manifest["files"] if f["role"] == "weights"]
    assert entry["path"] == "weights.pt" and len(entry["sha256"]) == 64
    assert entry["size"] == (study.bundle / "weights.pt").stat().st_size
    for key in ("engine", "model", "measured", "host", "libraries", "preprocessing", "classes", "study"):
        assert manifest[key], key
    assert manifest["model"]["recipe_hash"] and manifest["measured"]["protocol"]["requests"] == 20
    assert {"torch", "torchvision", "python", "lepton_tune"} <= set(manifest["libraries"])
    assert (study.bundle / "MLmodel").is_file() and "lepton-tune production bundle" in (study.bundle / "README.md").read_text()


def test_tampered_weights_are_refused(bundle_copy: Path) -> None:
    weights = bundle_copy / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"weights\.pt: checksum mismatch .*modified or corrupted. Refusing to load"):
        open_bundle(bundle_copy)


def test_tampered_weights_refused_by_cli_with_exit_2(study: TinyStudy, bundle_copy: Path) -> None:
    with (bundle_copy / "weights.pt").open("ab") as fh:
        fh.write(b"x")
    proc = cli("predict", str(bundle_copy), str(bundle_copy / "README.md"), cwd=study.root, env=study.env)
    assert proc.returncode == 2 and "checksum mismatch" in proc.stderr


def test_newer_format_version_is_refused(bundle_copy: Path) -> None:
    _edit(bundle_copy, lambda m: m.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(BundleError, match=rf"format_version {FORMAT_VERSION + 1} is newer than this lepton-tune .*Upgrade"):
        read_manifest(bundle_copy)


def test_missing_file_names_itself(bundle_copy: Path) -> None:
    (bundle_copy / "weights.pt").unlink()
    with pytest.raises(BundleError, match=r"bundle/weights\.pt: missing from the bundle \(weights listed in lepton\.yaml\)"):
        read_manifest(bundle_copy)


def test_listed_path_outside_the_bundle_is_refused(bundle_copy: Path) -> None:
    _edit(bundle_copy, lambda m: m["files"].append({"path": "../elsewhere.pt", "role": "onnx", "size": 0, "sha256": ""}))
    with pytest.raises(BundleError, match=r"'\.\./elsewhere\.pt' points outside the bundle"):
        read_manifest(bundle_copy)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"no such bundle directory"):
        read_manifest(tmp_path / "nope")
    with pytest.raises(BundleError, match=r"lepton\.yaml: missing; .* is not a lepton-tune bundle"):
        read_manifest(tmp_path)
    (tmp_path / "lepton.yaml").write_text("format_version: one\n")
    with pytest.raises(BundleError, match=r"format_version: must be an integer, got 'one'"):
        read_manifest(tmp_path)
    (tmp_path / "lepton.yaml").write_text("format_version: 1\n")
    with pytest.raises(BundleError, match=r"missing key\(s\) engine, model, preprocessing, files"):
        read_manifest(tmp_path)
    (tmp_path / "lepton.yaml").write_text("[1, 2\n")
    with pytest.raises(BundleError, match=r"unreadable manifest"):
        read_manifest(tmp_path)


def test_invalid_engine_section_names_the_key(bundle_copy: Path) -> None:
    _edit(bundle_copy, lambda m: m["engine"].update(shards=0))
    with pytest.raises(BundleError, match=r"lepton\.yaml: engine\.shards: "):
        open_bundle(bundle_copy)


def test_engine_override_is_validated(bundle_copy: Path) -> None:
    with pytest.raises(BundleError, match=r"engine override batch_size: "):
        open_bundle(bundle_copy).engine(batch_size=0)
