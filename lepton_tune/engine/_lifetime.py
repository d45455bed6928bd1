"""Process lifetime: what lepton-tune starts ends soon after its parent, and a trial's memory has a real cap.

Two independent ways to notice a parent's death, because each alone has a gap:

- ``PR_SET_PDEATHSIG`` (Linux ``prctl``): the kernel signals the child when the thread that
  forked it ends. For a process started by a forkserver that is the forkserver, which itself
  ends at the EOF of its owner's pipe.
- a watchdog thread blocked in ``poll`` on the pipe to the parent (a duplicated descriptor, so
  that closing the connection does not end the watch): the pipe's hang-up or error arrives the
  moment the parent's end closes; every ``_WATCH_S`` it also checks that the parent still lives.

Either way the process ends with ``os._exit``: no ``finally`` block, atexit hook or storage
write runs, so a trial whose search died never touches the study.

Memory: ``RLIMIT_AS`` is impractical for torch. Importing torch (CUDA build, measured here)
takes the address space to 3.2 GiB while only 0.5 GiB is resident and 0.77 GiB is private
writable data; every thread's malloc arena reserves 64 MiB more. A cap on the address space
would have to sit gigabytes above the real limit and move with the thread count. ``RLIMIT_DATA``
counts private writable mappings only (not the shared-memory slot pools or shared weights), so
:func:`cap_memory` sets it to the process's data size now plus the allowance. A runaway
allocation then fails in that process (``MemoryError`` / torch's "can't allocate memory")
before the kernel's OOM killer would pick a victim; the summed-PSS polling of the trial's
parent still judges the tree as a whole.

This module imports only the standard library. ``ui`` runs it as a script
(``python -P _lifetime.py --guard -- COMMAND ...``) to hold the MLflow server and the job
consumers it starts in one process group that dies with ``lepton-tune ui``.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Any

__all__ = ["cap_memory", "die_with_parent", "guard_main", "set_parent_death_signal"]

_PR_SET_PDEATHSIG = 1
_WATCH_S = 0.25
_ORPHAN_EXIT = 1
_GUARD_GRACE_S = 0.5


def set_parent_death_signal(signum: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent ends (Linux only).

    Returns False where ``prctl`` is not available (the watchdog of :func:`die_with_parent`
    still works there).

    Example:
        >>> set_parent_death_signal(signal.SIGKILL) in (True, False)
        True
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _fileno(link: Any) -> int:
    return link if isinstance(link, int) else int(link.fileno())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with_parent(
    *links: Any, parent_pid: int | None = None, signum: int = signal.SIGKILL, on_death: Any = None
) -> None:
    """Make this process end within about ``_WATCH_S`` seconds of its parent's death.

    Call it first thing in a child. ``links`` are connections (or descriptors) to the parent:
    their hang-up ends this process at once. ``parent_pid`` is the process that owns this one
    when that is not the OS parent (a forkserver's child belongs to the forkserver's owner).
    ``on_death`` (no arguments) runs before ``os._exit`` when the watchdog notices; the signal
    of ``PR_SET_PDEATHSIG`` runs nothing.

    Example:
        >>> # in a child process: die_with_parent(conn, parent_pid=spec.parent_pid)
    """
    ppid = os.getppid()
    set_parent_death_signal(signum)
    if os.getppid() != ppid or (parent_pid is not None and not _alive(parent_pid)):
        os._exit(_ORPHAN_EXIT)  # the parent died before the death signal was armed
    fds = []
    for link in links:
        if link is not None:
            try:
                fds.append(os.dup(_fileno(link)))
            except (OSError, ValueError):
                pass
    thread = threading.Thread(
        target=_watch, args=(fds, ppid, parent_pid, on_death), name="lepton-parent-watch", daemon=True
    )
    thread.start()


def _watch(fds: list[int], ppid: int, parent_pid: int | None, on_death: Any) -> None:
    poller = select.poll()
    for fd in fds:
        poller.register(fd, 0)  # no events asked: only hang-up, error and invalid wake us
    while True:
        hung_up = poller.poll(_WATCH_S * 1000)
        if hung_up or os.getppid() != ppid or (parent_pid is not None and not _alive(parent_pid)):
            break
    if on_death is not None:
        try:
            on_death()
        finally:
            os._exit(_ORPHAN_EXIT)
    os._exit(_ORPHAN_EXIT)


def _data_mib() -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _available_mib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cap_memory(limit_mib: float | None) -> int | None:
    """Cap this process (and every process it starts) at its data size now plus ``limit_mib``.

    With ``limit_mib`` None the allowance is the host's available memory now, so one runaway
    process fails its allocation instead of waking the OOM killer. Returns the cap in bytes, or
    None where ``RLIMIT_DATA`` or ``/proc`` is missing (non-Linux).

    Example:
        >>> # in the trial process: cap_memory(spec.limits.trial_memory_mb)
    """
    try:
        import resource
    except ImportError:
        return None
    now = _data_mib()
    allowance = limit_mib if limit_mib is not None else _available_mib()
    if now is None or allowance is None or not hasattr(resource, "RLIMIT_DATA"):
        return None
    cap = int((now + allowance) * 2**20)
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    try:
        resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    except (ValueError, OSError):
        return None
    return cap


# -- the guard ``lepton-tune ui`` runs its server under ----------------------------------------


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def _end_group(pgid: int, grace_s: float) -> None:
    """SIGTERM every other member of the group, then SIGKILL what is left after ``grace_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        members = _group_members(pgid)
        for pid in members:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        limit = time.monotonic() + (grace_s if sig == signal.SIGTERM else 2.0)
        while members and time.monotonic() < limit:
            time.sleep(0.05)
            members = _group_members(pgid)
        if not members:
            return


def guard_main(argv: list[str]) -> int:
    """Run ``argv`` in this process's group; end the whole group when told or when the parent goes.

    The guard is started as a session leader whose stdin is a pipe from its parent. It ends the
    group (SIGTERM, then SIGKILL after ``_GUARD_GRACE_S``) on SIGTERM, SIGINT or SIGHUP, at the
    EOF of stdin, at its parent's death, or when the command exits by itself; it exits with the
    command's exit code, or 0 when it was stopped.
    """
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    ppid = os.getppid()
    set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != ppid:
        return 0
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    poller = select.poll()
    poller.register(sys.stdin.fileno(), select.POLLIN)
    code = 0
    while not stop.is_set():
        if child.poll() is not None:
            code = child.returncode
            break
        try:
            if poller.poll(_WATCH_S * 1000) and not os.read(sys.stdin.fileno(), 4096):
                break  # EOF: the parent closed the pipe or died
        except InterruptedError:
            continue
        if os.getppid() != ppid:
            break
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    _end_group(os.getpgid(0), _GUARD_GRACE_S)
    try:
        child.wait(2.0)
    except subprocess.TimeoutExpired:
        pass
    return max(0, code)


if __name__ == "__main__":  # pragma: no cover - run by `lepton-tune ui` as a script, see guard_main
    args = sys.argv[1:]
    if args[:2] != ["--guard", "--"] or len(args) < 3:
        sys.stderr.write("usage: python -P _lifetime.py --guard -- COMMAND [ARG ...]\n")
        sys.exit(2)
    sys.exit(guard_main(args[2:]))
