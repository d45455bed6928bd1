"""Subcommands of the ``lepton-tune`` CLI: each module has ``add_parser(sub)`` and ``run(args)``."""
