"""What every command shares: exit statuses, the usage error, option readers, the loop.

Command modules import this; nothing outside ``prober.cli`` imports anything of the CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import IO, Any, NoReturn, TypeVar

from prober.core.errors import InputError
from prober.net.loop import new_event_loop

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
# `prober policy`: the run completed and no attempt met a TLS server (README, "prober policy")
EXIT_NO_TLS = 3
EXIT_INTERRUPTED = 130

T = TypeVar("T")


class UsageError(InputError):
    """Bad input from the user: reported as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # one line naming the bad input, not a usage dump
        raise UsageError(f"{message} (see `{self.prog} --help`)")


@dataclass
class Commands:
    """The parsers a command module fills in (``register(hooks)``)."""

    parsers: Mapping[str, argparse.ArgumentParser]

    def command(self, name: str, description: str) -> argparse.ArgumentParser:
        p = self.parsers[name]
        p.description = description
        return p


def open_out(path: str) -> IO[str]:
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {path!r}: {e.strerror}") from None


def read_json(path: str) -> Any:
    """A saved JSON document (a run to diff or draw): UsageError naming the file when it
    cannot be read or is not JSON."""
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as e:
        raise UsageError(f"cannot read {path!r}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: not JSON ({e})") from None
    except RecursionError:
        # json's decoder recurses per level: a few thousand [ exhaust the stack
        raise UsageError(f"{path}: nested too deeply to be a prober document") from None


def json_file_of(args: argparse.Namespace) -> IO[str] | None:
    """``--json FILE`` opened before any work, so an unwritable path fails at once; None
    for no ``--json`` or ``--json -`` (stdout, see report.output.emit)."""
    return open_out(args.json) if args.json and args.json != "-" else None


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, on uvloop where installed (prober.net.loop); Ctrl-C (SIGINT) raises
    KeyboardInterrupt once the run has stopped, and the command keeps what it measured."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(_interruptible(coro))


# how often an interrupted run is cancelled again until it has stopped
_RECANCEL_S = 0.25


async def _interruptible(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``; on SIGINT cancel it and every task it started, and again every
    _RECANCEL_S until it has stopped. Once is not always enough on Python 3.11: a
    cancellation that meets a timeout expiring at that moment, or a future completing, can
    be swallowed (asyncio.timeout / wait_for), and the run would go on to its end."""
    loop = asyncio.get_running_loop()
    main = loop.create_task(coro)
    interrupted = False

    def cancel_all() -> None:
        if main.done():
            return
        for t in asyncio.all_tasks(loop):
            if t is not me:
                t.cancel()
        loop.call_later(_RECANCEL_S, cancel_all)

    def on_sigint() -> None:
        nonlocal interrupted
        interrupted = True
        cancel_all()

    me = asyncio.current_task()
    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
        return await main
    try:
        try:
            result = await main
        except asyncio.CancelledError:
            if interrupted:
                raise KeyboardInterrupt from None
            raise
        if interrupted:  # stopped early all the same: what it returned is partial
            raise KeyboardInterrupt
        return result
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def raise_fd_limit(concurrency: int) -> None:
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = concurrency + 256
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
