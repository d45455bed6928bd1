"""Refusals: tampered, missing or unlisted-path files, newer format versions, not a bundle at all."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from lepton_tune.bundle import FORMAT_VERSION, read_manifest
from lepton_tune.bundle._load import open_bundle
from lepton_tune.exceptions import BundleError
from tests.bundle_tests._study import TinyStudy, cli


def _edit(bundle: Path, change, *, sign: bool = True) -> None:  # type: ignore[no-untyped-def]
    """Change the manifest; ``sign`` also rewrites lepton.sha256 (as someone who edits a bundle on purpose would)."""
    path = bundle / "lepton.yaml"
    manifest = yaml.safe_load(path.read_text())
    change(manifest)
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    if sign:
        (bundle / "lepton.sha256").write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  lepton.yaml\n")


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
    assert (study.bundle / "MLmodel").is_file() and "lepton-tune production bundle" in (
        study.bundle / "README.md"
    ).read_text()


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
    with pytest.raises(
        BundleError, match=rf"format_version {FORMAT_VERSION + 1} is newer than this lepton-tune .*Upgrade"
    ):
        read_manifest(bundle_copy)


def test_missing_file_names_itself(bundle_copy: Path) -> None:
    (bundle_copy / "weights.pt").unlink()
    with pytest.raises(
        BundleError, match=r"bundle/weights\.pt: missing from the bundle \(weights listed in lepton\.yaml\)"
    ):
        read_manifest(bundle_copy)


def test_listed_path_outside_the_bundle_is_refused(bundle_copy: Path) -> None:
    _edit(
        bundle_copy, lambda m: m["files"].append({"path": "../elsewhere.pt", "role": "onnx", "size": 0, "sha256": ""})
    )
    with pytest.raises(
        BundleError, match=r"files\[\d+\]\.path: must be a relative path inside the bundle, got '\.\./elsewhere\.pt'"
    ):
        read_manifest(bundle_copy)


def test_listed_symlink_out_of_the_bundle_is_refused(bundle_copy: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.pt").write_bytes((bundle_copy / "weights.pt").read_bytes())
    (bundle_copy / "weights.pt").unlink()
    (bundle_copy / "weights.pt").symlink_to(tmp_path / "outside.pt")
    with pytest.raises(BundleError, match=r"'weights\.pt' points outside the bundle"):
        read_manifest(bundle_copy)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"no such bundle directory"):
        read_manifest(tmp_path / "nope")
    with pytest.raises(BundleError, match=r"lepton\.yaml: missing; .* is not a lepton-tune bundle"):
        read_manifest(tmp_path)
    (tmp_path / "lepton.yaml").write_text("format_version: one\n")
    with pytest.raises(BundleError, match=r"format_version: must be an integer, got 'one'"):
        read_manifest(tmp_path)
    (tmp_path / "lepton.yaml").write_text(f"format_version: {FORMAT_VERSION}\n")
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


def test_manifest_edit_without_its_digest_is_refused(bundle_copy: Path) -> None:
    _edit(bundle_copy, lambda m: m["engine"].update(shards=2), sign=False)
    with pytest.raises(
        BundleError,
        match=r"lepton\.yaml: checksum mismatch with lepton\.sha256 .*the manifest was "
        r"modified or corrupted\. Refusing to load it",
    ):
        read_manifest(bundle_copy)
    (bundle_copy / "lepton.sha256").unlink()
    with pytest.raises(BundleError, match=r"lepton\.sha256: missing; it holds the checksum of lepton\.yaml"):
        read_manifest(bundle_copy)


def test_pinned_digest_refuses_another_bundle(study: TinyStudy, bundle_copy: Path) -> None:
    from lepton_tune.bundle import manifest_digest

    digest = manifest_digest(study.bundle)
    assert len(digest) == 64 and read_manifest(bundle_copy, digest=digest)["format_version"] == FORMAT_VERSION
    _edit(bundle_copy, lambda m: m["engine"].update(shards=2))  # edited and re-signed: only the pin catches it
    with pytest.raises(BundleError, match=r"is not the digest you pinned .*this is not the bundle you expected"):
        open_bundle(bundle_copy, digest=digest)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(files=[]), r"files: must list the bundle's files \(a non-empty list\), got \[\]"),
        (
            lambda m: m.update(files=[f for f in m["files"] if f["role"] != "weights"]),
            r"files: loader '\w+' serves from exactly one file with role 'weights', the list has 0",
        ),
        (lambda m: m["files"][0].update(size="big"), r"files\[0\]\.size: must be a non-negative integer, got 'big'"),
        (
            lambda m: m["files"][0].update(path="/etc/passwd"),
            r"files\[0\]\.path: must be a relative path inside the bundle",
        ),
        (
            lambda m: m["model"].update(image_shape=[3, 100000, 16]),
            r"model\.image_shape: must be \[channels 1-3, height, width\]",
        ),
        (
            lambda m: m["preprocessing"].update(std=[0.0, 1.0, 1.0]),
            r"preprocessing\.std: must be 1-3 finite numbers > 0",
        ),
        (
            lambda m: m["preprocessing"].update(mean=[float("nan")] * 3),
            r"preprocessing\.mean: must be 1-3 finite numbers",
        ),
        (lambda m: m.update(engine=[1, 2]), r"engine: must be a mapping of EngineConfig fields"),
        (lambda m: m.update(model="x"), r"model: must be a mapping, got 'x'"),
    ],
)
def test_malformed_manifest_is_refused_with_the_key(bundle_copy: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    _edit(bundle_copy, change)
    with pytest.raises(BundleError, match=message):
        open_bundle(bundle_copy)


def test_unlisted_weights_are_never_loaded(bundle_copy: Path) -> None:
    # Before: a manifest without a weights entry fell back to an unchecked weights.pt.
    _edit(bundle_copy, lambda m: m.update(files=[f for f in m["files"] if f["role"] != "weights"]))
    with (bundle_copy / "weights.pt").open("ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(BundleError, match="role 'weights'"):
        open_bundle(bundle_copy)


def test_non_utf8_and_huge_manifests_are_refused(bundle_copy: Path) -> None:
    path = bundle_copy / "lepton.yaml"
    path.write_bytes(b"format_version: 2\n\xff\xfe: x\n")
    with pytest.raises(BundleError, match=r"lepton\.yaml: not UTF-8 text \(byte 18\)"):
        read_manifest(bundle_copy)
    path.write_bytes(b"# " + b"x" * (2 << 20))
    with pytest.raises(BundleError, match=r"larger than 1024 KiB"):
        read_manifest(bundle_copy)
    bomb = "a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")
    )
    path.write_text(bomb)
    with pytest.raises(BundleError, match=r"expands to more than 100000 values"):
        read_manifest(bundle_copy)


def test_malformed_manifest_is_exit_2_in_the_cli(study: TinyStudy, bundle_copy: Path) -> None:
    _edit(bundle_copy, lambda m: m.update(files="weights.pt"))
    proc = cli("predict", str(bundle_copy), str(bundle_copy / "README.md"), cwd=study.root, env=study.env)
    assert (
        proc.returncode == 2 and "files: must list the bundle's files" in proc.stderr and "Traceback" not in proc.stderr
    )
