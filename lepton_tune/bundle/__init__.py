"""Production bundles: export a study's chosen point, verify it, load it into the same engine (or MLflow)."""

from __future__ import annotations

from lepton_tune.bundle._answer import labels_of
from lepton_tune.bundle._export import export_bundle
from lepton_tune.bundle._load import Bundle, load_bundle, open_bundle
from lepton_tune.bundle._manifest import (
    DIGEST,
    FORMAT_VERSION,
    MANIFEST,
    manifest_digest,
    read_manifest,
    verify_files,
)
from lepton_tune.bundle._mlmodel import register_bundle
from lepton_tune.bundle._module import TRUST_ENV
from lepton_tune.bundle._replace import check_out_dir, storage_dirs
from lepton_tune.bundle._verify import DEFAULT_TOLERANCES, Check, compare_metrics, parse_tolerances

__all__ = [
    "DEFAULT_TOLERANCES",
    "DIGEST",
    "FORMAT_VERSION",
    "MANIFEST",
    "TRUST_ENV",
    "Bundle",
    "Check",
    "check_out_dir",
    "compare_metrics",
    "export_bundle",
    "labels_of",
    "load_bundle",
    "manifest_digest",
    "open_bundle",
    "parse_tolerances",
    "read_manifest",
    "register_bundle",
    "storage_dirs",
    "verify_files",
]
