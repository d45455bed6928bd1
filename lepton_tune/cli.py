"""The ``lepton-tune`` command: parse arguments, call the public API, turn errors into exit codes.

Exit codes: 0 success, 1 runtime failure, 2 bad input (any :class:`ConfigError` or other
``LeptonTuneError`` raised by validation), 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP: the three
signals stop a command the same way (the running trial is recorded as failed, children stopped).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from lepton_tune import __version__

__all__ = ["build_parser", "main"]

#: subcommand -> module under lepton_tune._cli holding add_parser(sub) and run(args)
COMMANDS = {
    "search": "search",
    "init": "init",
    "show": "show",
    "report": "report",
    "export": "export",
    "verify": "verify",
    "predict": "predict",
    "ui": "ui",
    "cache": "cache",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lepton-tune",
        description="Search model and serving layout together; measure every trial for real; export the chosen point.",
    )
    parser.add_argument("--version", action="version", version=f"lepton-tune {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors (implies --verbose)")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show library log lines and warnings (MLflow, alembic, Optuna, deprecations)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in COMMANDS.items():
        importlib.import_module(f"lepton_tune._cli.{module}").add_parser(sub)
        command = sub.choices[name]  # also after the command (`search --verbose`); SUPPRESS keeps the top-level value
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lepton-tune`` console script."""
    import faulthandler
    import io
    import signal

    from lepton_tune._cli._noise import route_library_noise
    from lepton_tune._cli._signals import exit_code, handle_stop_signals
    from lepton_tune.exceptions import ConfigError, LeptonTuneError

    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>` prints every thread's stack: for stuck runs
        try:
            faulthandler.register(signal.SIGUSR1, all_threads=True)
        except (io.UnsupportedOperation, ValueError, AttributeError):
            pass  # stderr without a file descriptor (embedded, captured): no stack dumps then
    parser = build_parser()
    args = parser.parse_args(argv)
    undo_noise = route_library_noise(verbose=args.verbose or args.debug)
    restore = handle_stop_signals()
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt as exc:
        code = exit_code(exc)
        print("lepton-tune: interrupted" if code == 130 else f"lepton-tune: stopped by {exc}", file=sys.stderr)
        return code
    except LeptonTuneError as exc:
        if args.debug:
            raise
        bad_input = isinstance(exc, (ConfigError, ValueError))
        text = str(exc)
        print(
            f"lepton-tune {args.command}: error: {text}"
            if "\n" not in text
            else f"lepton-tune {args.command}: error:\n{text}",
            file=sys.stderr,
        )
        return int(getattr(exc, "exit_code", 0)) or (2 if bad_input else 1)
    finally:
        restore()
        undo_noise()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
