"""`lepton-tune verify`: re-measure a bundle on this host under its recorded protocol."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lepton_tune._cli._common import err_console, print_json

__all__ = ["EXIT_BUSY", "EXIT_DRIFTED", "add_parser", "run"]

EXIT_DRIFTED = 3  # a measured value is outside its tolerance
EXIT_BUSY = 4  # other processes kept the host busy in every window: nothing was judged


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "verify", help="re-measure a bundle here; exit 3 if it drifted, 4 if the host was busy",
        description="Check the bundle's files, start its engine, re-measure it under the recorded protocol and "
                    "compare with the recorded values. Tolerances, in the worse direction only: latency p50/p95 "
                    "+15%%, throughput -10%%, memory +10%%; accuracy equal within one test image. p99 and cost are "
                    "reported, not judged. Exit 0 within, 3 outside (drifted), 4 host busy (other processes used more "
                    "than the protocol's noise_threshold in every re-measured window: nothing judged).",
    )
    p.add_argument("bundle", type=Path, metavar="DIR", help="bundle directory")
    p.add_argument("--tolerance", action="append", default=None, metavar="[METRIC=]FRACTION",
                   help="override a tolerance: '0.5' for every timing/memory metric, 'memory_mb=0.2', "
                        "'accuracy=0.01' (absolute); repeatable")
    p.add_argument("--noise-threshold", type=float, default=None, metavar="CORES",
                   help="CPU (in cores) other processes may use during a window before it is re-measured and, "
                        "past the retry budget, the run is called busy (exit 4); default: the bundle's protocol")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(handler=run)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _host_differences(recorded: dict[str, Any]) -> list[str]:
    from lepton_tune.measure import FINGERPRINT_KEYS, host_fingerprint

    here = host_fingerprint()
    return [f"{k}: {recorded.get(k)!r} -> {here.get(k)!r}" for k in FINGERPRINT_KEYS if recorded.get(k) != here.get(k)]


def _test_split(bundle: Any) -> tuple[Any, Any] | None:
    from lepton_tune.config import DatasetSpec
    from lepton_tune.data import load_dataset
    from lepton_tune.exceptions import DataError

    try:
        data = load_dataset(DatasetSpec(**bundle.manifest["dataset"]))
    except DataError as exc:
        err_console().print(f"[yellow]warning:[/] the study's dataset is not readable here ({escape(str(exc))}); "
                            "accuracy is not re-measured and timing uses random images", soft_wrap=True)
        return None
    return data.test[0].numpy(), data.test[1].numpy()


def _busy(args: argparse.Namespace, noise: dict[str, Any], metrics: dict[str, Any], console: Any) -> int:
    """The host was busy in every retry: the numbers say nothing about the bundle (exit 4, not drifted)."""
    message = (f"host busy during measurement: foreign load {noise.get('foreign_load_max', 0.0):.0%} of a core in "
               f"{noise.get('noisy_windows', 0)} window(s) (threshold {noise.get('threshold', 0.0):.0%}, "
               f"{noise.get('retries', 0)} re-measures); re-run on a quiet host")
    if args.json:
        print_json({"bundle": str(args.bundle), "ok": None, "busy": True, "message": message, "noise": noise,
                    "measured": metrics})
    console.print(f"[yellow]{escape(message)}[/]", soft_wrap=True)
    return EXIT_BUSY


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from lepton_tune.bundle import compare_metrics, open_bundle, parse_tolerances
    from lepton_tune.config import PricesSpec, ProtocolSpec
    from lepton_tune.exceptions import EngineError
    from lepton_tune.measure import EngineJob, request_pool, run_isolated

    console = err_console()
    tolerances = parse_tolerances(args.tolerance)
    bundle = open_bundle(args.bundle)  # checksums first
    measured_rec = bundle.manifest["measured"]
    differences = _host_differences(bundle.manifest.get("host", {}))
    if differences:
        console.print("[yellow]warning:[/] this host differs from the one the bundle was measured on "
                      f"({escape('; '.join(differences))}); expect different numbers", soft_wrap=True)
    protocol = ProtocolSpec(**measured_rec.get("protocol", {}))
    if args.noise_threshold is not None:
        if not 0 <= args.noise_threshold < float("inf"):
            from lepton_tune.exceptions import ConfigError

            raise ConfigError(f"--noise-threshold: must be a finite number of cores >= 0, got {args.noise_threshold}")
        protocol = protocol.model_copy(update={"noise_threshold": args.noise_threshold})
    prices = PricesSpec(**measured_rec.get("prices", {}))
    split = _test_split(bundle)
    samples = int(measured_rec.get("accuracy_samples") or 0)
    if split is not None:
        test_x, test_y = split
        if samples:
            test_x, test_y = test_x[:samples], test_y[:samples]
        pool = request_pool(test_x)
    else:
        pool = request_pool(np.random.default_rng(0).standard_normal((64, *bundle.input_shape)).astype(np.float32))
    config = bundle.config
    # Same isolated process as the study's trials, so memory compares like with like.
    job = EngineJob(bundle.module, config, tuple(bundle.input_shape), pool, protocol, prices,
                    test_x=test_x if split is not None else None, test_y=test_y if split is not None else None)
    outcome = run_isolated(job)
    if outcome.kind != "ok":
        raise EngineError(f"verify: the bundle could not be measured: {outcome.reason}")
    metrics = dict(outcome.record["metrics"])
    spread = outcome.record["spread"]
    noise = outcome.record.get("noise") or {}
    if noise.get("noisy"):
        return _busy(args, noise, metrics, console)
    checks = compare_metrics(measured_rec["metrics"], metrics, accuracy_samples=samples or len(pool),
                             tolerances=tolerances)
    outside = [c for c in checks if c.status == "outside"]
    if args.json:
        print_json({"bundle": str(args.bundle), "ok": not outside, "host_differences": differences,
                    "checks": [c.as_dict() for c in checks], "measured": metrics, "spread": spread})
    else:
        from rich.table import Table

        table = Table(title=f"verify {args.bundle}")
        for col in ("metric", "recorded", "measured", "change", "tolerance", "status"):
            table.add_column(col)
        for c in checks:
            change = f"{c.change:+.4f}" if c.name == "accuracy" else f"{c.change:+.1%}"
            tol = "-" if c.tolerance is None else (f"±{c.tolerance:.4f}" if c.name == "accuracy" else f"{c.tolerance:.0%}")
            style = {"ok": "green", "outside": "red"}.get(c.status, "dim")
            table.add_row(c.name, f"{c.recorded:.4g}", f"{c.measured:.4g}", change, tol, f"[{style}]{c.status}[/]")
        console.print(table)
        console.print("[green]within tolerance[/]" if not outside else
                      f"[red]outside tolerance:[/] {', '.join(c.name for c in outside)}")
    return EXIT_DRIFTED if outside else 0
