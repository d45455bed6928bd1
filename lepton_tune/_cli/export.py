"""`lepton-tune export`: choose a front point and write it as a production bundle."""

from __future__ import annotations

import argparse
from pathlib import Path

from lepton_tune._cli._common import DEFAULT_RUN_DIR, add_location_options, err_console, print_json
from lepton_tune.front import TrialRecord

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "export", help="write a production bundle of a chosen front point",
        description="Choose a trial (--trial N, or the front points meeting every --require, best on --prefer) "
                    "and write it as a bundle: lepton.yaml, weights with checksums, a model card, and an MLflow "
                    "pyfunc MLmodel. Example: lepton-tune export --require 'accuracy>=0.95' --prefer latency_p95_ms --out bundle/",
    )
    add_location_options(p)
    choose = p.add_mutually_exclusive_group(required=True)
    choose.add_argument("--trial", type=int, default=None, metavar="N", help="export trial N (it must be COMPLETE)")
    choose.add_argument("--require", action="append", default=None, metavar="EXPR",
                        help="hard limit, e.g. 'accuracy>=0.97', 'latency_p95_ms<=20' (repeatable)")
    p.add_argument("--prefer", default=None, metavar="OBJECTIVE|knee",
                   help="among the points meeting the limits: best on this objective, or 'knee' (default)")
    p.add_argument("--out", type=Path, required=True, help="bundle directory to write (must not exist or be empty)")
    p.add_argument("--force", action="store_true",
                   help="replace --out if it is a lepton-tune bundle (never another directory, a file, '.', ~ or the run dir)")
    p.add_argument("--trust-code", action="store_true",
                   help="allow importing the user-model factory (model.python) that the study database names")
    p.add_argument("--register", default=None, metavar="NAME", help="also register the bundle in the MLflow Model Registry")
    p.add_argument("--alias", default=None, help="alias of the registered version (with --register), e.g. 'production'")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI for --register (default: the run directory's mlflow.db)")
    p.add_argument("--no-confirm", action="store_true",
                   help="export the search's own measurement instead of re-measuring the point first (see README)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(handler=run)


_CONFIRM_SHOWN = ("latency_p50_ms", "latency_p95_ms", "throughput", "memory_mb", "accuracy")


def _confirm(study, trial, console):  # type: ignore[no-untyped-def]
    """Re-measure the chosen point in a fresh process (the front's points are lucky on average)."""
    from lepton_tune.exceptions import HostBusyError
    from lepton_tune.tuning import confirm_trial, confirmation_of

    earlier = confirmation_of(study, trial.number)
    if earlier is None:
        console.print(f"confirming trial {trial.number}: measuring it again in a fresh process with fresh windows ...")
    else:
        console.print(f"trial {trial.number} was already confirmed in a fresh process (trial {earlier.number}); "
                      "using that measurement")
    confirmed = earlier or confirm_trial(study, trial)
    if TrialRecord.of(confirmed).noisy:
        confirmed = confirm_trial(study, trial, reuse=False)  # once more: the host may have calmed down
    if TrialRecord.of(confirmed).noisy:
        raise HostBusyError(f"trial {trial.number}: the host was busy while confirming it "
                            f"({TrialRecord.of(confirmed).reason}). Nothing was exported; re-run export on a quiet "
                            "host, or pass --no-confirm to export the search's measurement")
    first, now = TrialRecord.of(trial).metrics, TrialRecord.of(confirmed).metrics
    changes = ", ".join(f"{k} {first[k]:.4g} -> {now[k]:.4g}" for k in _CONFIRM_SHOWN if k in first and k in now)
    console.print(f"confirmed as trial {confirmed.number}: {changes} (the bundle records the confirmation)",
                  markup=False, highlight=False)
    return confirmed


def run(args: argparse.Namespace) -> int:
    from lepton_tune._cli.show import open_existing
    from lepton_tune.bundle import (
        check_out_dir,
        export_bundle,
        manifest_digest,
        read_manifest,
        storage_dirs,
    )
    from lepton_tune.exceptions import BundleError
    from lepton_tune.tuning import redact_url, resolve_storage_url, select_trial

    if args.alias and not args.register:
        raise BundleError("--alias needs --register NAME (the registered model the alias points into)")
    if args.prefer and args.trial is not None:
        raise BundleError("--prefer applies to --require; with --trial N the trial is already chosen")
    run_dir = args.run_dir or DEFAULT_RUN_DIR
    protect = [run_dir, *storage_dirs(resolve_storage_url(args.storage, run_dir))]
    check_out_dir(args.out, overwrite=args.force, protect=protect)  # before anything slow
    console = err_console()
    study, url = open_existing(args)
    selection = select_trial(study, requires=args.require or [], prefer=args.prefer, trial_number=args.trial)
    console.print(f"chose {selection.reason}", markup=False, highlight=False)
    metrics = TrialRecord.of(selection.trial).metrics
    console.print("  " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float))))
    chosen = selection.trial if args.no_confirm else _confirm(study, selection.trial, console)
    metrics = TrialRecord.of(chosen).metrics
    out = export_bundle(study, chosen, args.out, reason=selection.reason, overwrite=args.force,
                        storage=redact_url(url), protect=protect, trust_code=args.trust_code or None)
    digest = manifest_digest(out)
    result = {"bundle": str(out), "study": study.study_name, "trial": selection.trial.number,
              "reason": selection.reason, "metrics": metrics, "manifest_sha256": digest,
              "confirmed_by": None if chosen is selection.trial else chosen.number,
              "first_metrics": TrialRecord.of(selection.trial).metrics}
    console.print(f"wrote bundle {out} (lepton.yaml sha256 {digest}: pin it with load_bundle(..., digest=...))")
    if args.register:
        from lepton_tune.bundle import register_bundle
        from lepton_tune.tracking import default_tracking_uri, ensure_tracking_store

        uri = args.tracking_uri or default_tracking_uri(args.run_dir or DEFAULT_RUN_DIR)
        location = None if args.tracking_uri else (args.run_dir or DEFAULT_RUN_DIR) / "mlartifacts"
        experiment = ensure_tracking_store(uri, study.study_name, location)
        version = register_bundle(out, args.register, tracking_uri=uri, experiment_id=experiment, alias=args.alias)
        where = f"models:/{args.register}@{args.alias}" if args.alias else f"models:/{args.register}/{version}"
        console.print(f"registered {args.register} version {version} ({where}) in {redact_url(uri)}")
        result.update(registered={"name": args.register, "version": version, "alias": args.alias, "uri": where})
    result["files"] = read_manifest(out, verify=False)["files"]
    if args.json:
        print_json(result)
    return 0
