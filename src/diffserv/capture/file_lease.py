"""A read lease on a mapped input, so that nobody can truncate it while we read it.

Reading a memory-mapped file that another process truncates kills the reader with
SIGBUS, which no Python code can turn into an error message. Linux read leases
(fcntl F_SETLEASE) prevent exactly that: while we hold one, another process that opens
the file for writing or truncates it waits (or gets EAGAIN), and the lease shows as
being broken. The reader checks between windows and stops with an error ("the file
is being changed"); closing the file releases the lease and lets the other process go
on. Where a lease cannot be taken (not our file and no CAP_LEASE, a file system without
leases, a file someone already has open for writing, not the main thread) the input
is read with read() instead, which sees a truncation as an early end of file.
"""

from __future__ import annotations

import contextlib
import fcntl
import signal
import threading


def take_read_lease(fd: int) -> bool:
    """Try to take a read lease on ``fd``; True when we hold one.

    The kernel signals a lease break with SIGIO, whose default action ends the process;
    it is ignored here when nothing else handles it (the break is seen by polling).
    """
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGIO) == signal.SIG_DFL:
            signal.signal(signal.SIGIO, signal.SIG_IGN)
    elif signal.getsignal(signal.SIGIO) == signal.SIG_DFL:
        return False  # cannot make the break signal harmless from here
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError:
        return False
    return True


def drop_read_lease(fd: int) -> None:
    """Give the lease back now. Closing our descriptor is not enough: a mapping keeps the
    open file (and so the lease) alive while a batch still views it, and a writer would
    wait out the kernel's lease-break time (45 s) for a reader that has finished."""
    with contextlib.suppress(OSError):  # no lease held, or the descriptor is gone
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)


def lease_broken(fd: int) -> bool:
    """True once another process wants to write or truncate the file (or the fd is gone)."""
    try:
        return fcntl.fcntl(fd, fcntl.F_GETLEASE) != fcntl.F_RDLCK
    except OSError:
        return True
