"""Ctrl-C and SIGTERM as one exception, so a long command stops where it is, keeps what it can and
says in one line how to go on.

:class:`Interrupted` is the KeyboardInterrupt a command raises once it has kept what it could;
:func:`sigterm_interrupts` makes SIGTERM raise it (Python already makes SIGINT raise
KeyboardInterrupt) and keeps one that lands in a finalizer, where Python could only print it, for
:func:`raise_lost` at the next safe point; :func:`held_signals` keeps both out of a block that must
not stop half-way;
:func:`children_spared_signals` keeps Ctrl-C and SIGTERM from the worker processes a run stops itself.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_lost: list[int] = []  # signals whose exception landed in a finalizer (a weakref callback, __del__)


class Interrupted(KeyboardInterrupt):
    """A run stopped by ``signal_number`` (SIGINT or SIGTERM). resume: one line saying what was
    kept and how to go on (None: nothing was kept)."""

    def __init__(self, signal_number: int = signal.SIGINT, resume: str | None = None):
        super().__init__(signal_number, resume)
        self.signal_number = signal_number
        self.resume = resume

    def __str__(self) -> str:
        return self.resume or "nothing was saved"


def signal_of(error: KeyboardInterrupt) -> int:
    """The signal behind ``error``: its own for :class:`Interrupted`, else SIGINT (Ctrl-C)."""
    return getattr(error, "signal_number", signal.SIGINT)


def exit_status(error: KeyboardInterrupt) -> int:
    """The shell's status of a process stopped by ``error``'s signal: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + int(signal_of(error))


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()  # only it may set signal handlers


def _restore(signal_number: int, handler) -> None:
    signal.signal(signal_number, signal.SIG_DFL if handler is None else handler)  # None: not set from Python


@contextlib.contextmanager
def sigterm_interrupts():
    """Within the block, SIGTERM raises ``Interrupted(SIGTERM)`` in the main thread, and a Ctrl-C or
    SIGTERM raised inside a finalizer (Python prints such an exception as "Exception ignored" and
    goes on) is kept, unprinted, for :func:`raise_lost`; the previous handler and hook are back
    afterwards. In another thread nothing changes."""
    if not _in_main_thread():
        yield
        return

    def interrupt(signal_number, frame):
        raise Interrupted(signal_number)

    def keep_lost(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _lost.append(signal_of(unraisable.exc_value))
        else:
            hook(unraisable)

    previous, hook = signal.signal(signal.SIGTERM, interrupt), sys.unraisablehook
    sys.unraisablehook = keep_lost
    try:
        yield
    finally:
        _restore(signal.SIGTERM, previous)
        sys.unraisablehook = hook
        _lost.clear()


def raise_lost() -> None:
    """Raise the Ctrl-C or SIGTERM that landed in a finalizer (see :func:`sigterm_interrupts`), if
    one did; long loops call it at each safe point (a training step, a fit)."""
    if _lost:
        signal_number = _lost[0]
        _lost.clear()
        raise Interrupted(signal_number)


@contextlib.contextmanager
def children_spared_signals():
    """Processes forked in the block (DataLoader workers) never receive SIGINT or SIGTERM: Ctrl-C
    (and a scheduler's SIGTERM, e.g. Slurm's scancel) reaches the whole process group, and this
    process stops its children itself. A signal that comes during the block arrives after it."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no process groups to fear
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, set(SIGNALS))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def held_signals():
    """Hold SIGINT and SIGTERM while the block runs (in the main thread), then hand them to their
    handlers: the run stops after the block, not half-way through it. A second signal is handed
    on at once (Ctrl-C twice stops a block that hangs). Signals held in a block that raises are
    dropped: the run is stopping anyway."""
    if not _in_main_thread():
        yield
        return
    held: list[int] = []

    def hold(signal_number, frame):
        held.append(signal_number)
        if len(held) > 1:
            restore()
            signal.raise_signal(signal_number)

    def restore():
        for signal_number, handler in previous.items():
            _restore(signal_number, handler)

    previous = {s: signal.signal(s, hold) for s in SIGNALS}
    try:
        yield
    finally:
        restore()
    for signal_number in dict.fromkeys(held):
        signal.raise_signal(signal_number)
