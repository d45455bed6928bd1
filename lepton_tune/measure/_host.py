"""Host fingerprint: what a measurement depends on, so results from other machines are told apart."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path
from typing import Any

from lepton_tune import __version__
from lepton_tune.config import host_facts

__all__ = ["FINGERPRINT_KEYS", "host_fingerprint", "host_id"]

#: The keys that decide whether two hosts are "the same" (versions of the measured stack included).
FINGERPRINT_KEYS = ("cpu_model", "cores", "memory_gib", "device", "torch", "torchvision", "python")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    wanted = {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni", "avx_vnni"}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(wanted & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return []


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return "cpu"


def host_fingerprint() -> dict[str, Any]:
    """Describe this host: CPU model, usable cores, memory, device, library versions.

    Example:
        >>> fp = host_fingerprint()
        >>> fp["cores"] >= 1
        True
    """
    import torch
    import torchvision

    facts = host_facts()
    return {
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cores": facts.cores,
        "memory_gib": round(facts.memory_gib),
        "device": _device(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "platform": sys.platform,
        "hostname": platform.node(),
        "lepton_tune": __version__,
    }


def host_id(fingerprint: dict[str, Any]) -> str:
    """A short stable id of the fingerprint's deciding keys (hostname excluded: identical hosts match)."""
    core = {k: fingerprint.get(k) for k in FINGERPRINT_KEYS}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:12]
