"""``python -m lepton_tune`` runs the CLI."""

from __future__ import annotations

import sys

from lepton_tune.cli import main

sys.exit(main())
