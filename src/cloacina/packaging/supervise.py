"""The supervisor of a command task: ``python -I supervise.py PARENT_PID PROGRAM [ARGS...]``.

The runner starts this script (by path, so no ``cloacina`` import slows it down) as the leader
of a new session, hence of a new process group; it runs the command in that group and exits
with the command's status. Everything the command starts stays in the group, so the runner
ends the whole task, grandchildren included, with one ``killpg`` at a timeout or a cancel.

It also ties the group's life to the runner's: on Linux the kernel sends this process
``SIGUSR1`` when the runner's thread that started it exits (``PR_SET_PDEATHSIG`` follows the
parent *thread*: the runner starts commands from its engine's task loop thread, which ends
only after every command task on it has ended), elsewhere a thread notices the parent pid
change; either way the whole group is killed, so a runner killed with ``kill -9`` leaves no
command running a task that another runner will recover and run again.

Standard library only: this file runs outside the ``cloacina`` package.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time

#: The signal the kernel sends us when the runner dies (one nobody else has a reason to send).
DEATH_SIGNAL = signal.SIGUSR1
#: Exit code when the command cannot be started at all (as a shell says "cannot execute").
CANNOT_START = 126


def set_parent_death_signal(sig: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG, sig)`` on Linux; False where it does not exist."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(1, int(sig), 0, 0, 0)) == 0  # 1 == PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False


def _kill_group(*_: object) -> None:
    try:
        os.killpg(0, signal.SIGKILL)  # this process's own group: the command and its children
    finally:
        os._exit(137)


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            _kill_group()
        time.sleep(0.5)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write("usage: supervise.py PARENT_PID PROGRAM [ARGS...]\n")
        return 2
    parent = int(argv[0])
    signal.signal(DEATH_SIGNAL, _kill_group)
    set_parent_death_signal(DEATH_SIGNAL)
    if os.getppid() != parent:  # the runner died before the death signal was armed
        _kill_group()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    try:
        child = subprocess.Popen(argv[1:])  # inherits stdin/stdout/stderr and the group
    except OSError as exc:
        sys.stderr.write(f"command {argv[1]!r} could not start: {exc}\n")
        return CANNOT_START
    # Hold no copy of the pipes: the runner must see the command's stdin close when the
    # command stops reading, and its stdout end when the command ends.
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    status = child.wait()
    if status < 0:  # died of a signal: die of the same one, so the runner sees the same status
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file of this script
        except (ValueError, OSError):
            pass
        try:
            signal.signal(-status, signal.SIG_DFL)
        except (OSError, ValueError):  # SIGKILL and SIGSTOP keep their default anyway
            pass
        os.kill(os.getpid(), -status)
        time.sleep(1.0)
        return 128 - status
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
