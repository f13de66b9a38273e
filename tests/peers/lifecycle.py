"""How the peers start and stop: the context-manager protocol they share, servers run as
a program of their own (a directory for their files, a port, stopped by PID), servers
run in threads of this process, and the /proc and polling helpers they use."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from .ports import free_port, wait_listening

T = TypeVar("T")
P = TypeVar("P", bound="Peer")
PP = TypeVar("PP", bound="ProcessPeer")
TS = TypeVar("TS", bound="ThreadedServer")


def poll_until(cond: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    """Whether ``cond()`` became true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
    return True


def wait_count(read: Callable[[], list[T]], n: int, timeout: float,
               step: float = 0.02) -> list[T]:
    """``read()`` once it has ``n`` items, or its last answer when ``timeout`` runs out:
    servers log a connection a little after the client is done with it."""
    got: list[T] = []

    def enough() -> bool:
        nonlocal got
        got = read()
        return len(got) >= n

    poll_until(enough, timeout, step)
    return got


# -- processes ----------------------------------------------------------------------------


def stop_process(p: subprocess.Popen[Any], sig: int = signal.SIGTERM,
                 grace: float = 5.0) -> None:
    """Send ``sig`` and wait; SIGKILL what is still there after ``grace`` seconds."""
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(grace)
    if p.stdin:
        with contextlib.suppress(OSError):
            p.stdin.close()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, but it exists
        return True
    return True


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the ``(comm)``: index 0 is ``state`` (field 3).
    (``comm`` may hold spaces and parentheses, hence the split at the last one.)"""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def ppid(pid: int) -> int:
    f = proc_stat(pid)
    return int(f[1]) if f else -1


def children(pid: int) -> list[int]:
    kids: set[int] = set()
    with contextlib.suppress(OSError):
        for t in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                kids.update(int(x) for x in (t / "children").read_text().split())
    if not kids:  # kernel without CONFIG_PROC_CHILDREN: scan /proc
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and ppid(int(entry.name)) == pid:
                kids.add(int(entry.name))
    return sorted(kids)


# -- peers --------------------------------------------------------------------------------


class Peer:
    """``start()``/``stop()``, or ``with``; ``start()`` returns the peer."""

    def start(self: P) -> P:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: P) -> P:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @contextlib.contextmanager
    def _stopped_on_failure(self) -> Iterator[None]:
        """For a start that builds in several steps: one failing half-way must not leave
        the earlier ones behind (``with`` calls no ``__exit__`` when ``__enter__`` fails)."""
        try:
            yield
        except BaseException:
            self.stop()
            raise


class ProcessPeer(Peer):
    """A server program run in the foreground, so ``stop()`` ends exactly the process it
    started, by PID.

    Its config and logs live in ``dir``: the one given, or a temp dir made on the first
    start; later starts reuse it and ``stop()`` keeps it, so the logs span every run and
    can be read after the end.  ``port`` 0 takes a free port at each start.

    Subclasses write their config and spawn the program in :meth:`_launch`, and may wait
    for more than the port in :meth:`_wait_ready`.
    """

    program = "server"  # in messages and the temp dir's name
    startup_log: tuple[str, ...] = ()  # files of ``dir`` that say why a start failed

    def __init__(self, host: str, *, port: int = 0, dir: str | Path | None = None) -> None:
        self.host = host
        self.port = port
        self._fixed_port = port
        self._dir = Path(dir) if dir is not None else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def dir(self) -> Path:
        assert self._dir is not None, "server not started"
        return self._dir

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _launch(self) -> None:
        """Write the config for ``port`` and spawn the program (:meth:`_spawn`)."""
        raise NotImplementedError

    def _wait_ready(self, timeout: float) -> None:
        wait_listening(self.host, self.port, timeout, alive=self._proc)

    def start(self: PP, timeout: float = 10.0) -> PP:
        if self._dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"prb-{self.program}-")
            self._dir = Path(self._tmp.name)
        self._dir.mkdir(parents=True, exist_ok=True)
        # another process can take a free port between free_port() and the program's
        # bind: then it says so in its log and gets fresh ports
        for _attempt in range(1 if self._fixed_port else 3):
            self.port = self._fixed_port or free_port(self.host)
            self._launch()
            try:
                self._wait_ready(timeout)
                return self
            except (RuntimeError, TimeoutError) as e:
                self.stop()
                if "Address already in use" not in self._read(*self.startup_log):
                    raise RuntimeError(f"{self.program} failed to start ({e}):\n"
                                       f"{self._read(*self.startup_log)}") from None
        raise RuntimeError(f"{self.program} could not bind a port:\n"
                           f"{self._read(*self.startup_log)}")

    def _spawn(self, argv: list[str], out: str, err: str | None = None, *,
               stdin: int = subprocess.DEVNULL) -> None:
        """Run ``argv`` in ``dir``, stdout appended to the file ``out`` and stderr to
        ``err`` (default: to ``out`` as well)."""
        with contextlib.ExitStack() as files:  # the child has its own copies
            stdout = files.enter_context(open(self.dir / out, "ab"))
            stderr = (files.enter_context(open(self.dir / err, "ab")) if err
                      else subprocess.STDOUT)
            self._proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr,
                                          cwd=self.dir)

    def stop(self) -> None:
        p, self._proc = self._proc, None
        if p is not None:
            stop_process(p)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

    def _read(self, *names: str) -> str:
        """The files of ``dir`` one after the other ("" for one not there yet)."""
        out = []
        for name in names:
            with contextlib.suppress(OSError, AssertionError):
                out.append((self.dir / name).read_text(errors="replace"))
        return "".join(out)


class ThreadedServer(Peer):
    """Listens on ``host``:<free port>; one thread accepts, and each connection is
    handled by :meth:`_handle` in a thread of its own.  ``stop()`` closes the listener
    and every connection still open (``join_handlers``: and waits for their threads)."""

    thread_name = "server"
    backlog = 128
    join_handlers = False

    def __init__(self, host: str) -> None:
        self.host = host
        self.port = 0
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._handlers: list[threading.Thread] = []

    def _handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def start(self: TS) -> TS:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, 0))
        s.listen(self.backlog)
        s.settimeout(0.2)  # so the accept loop sees stop() soon
        self._sock = s
        self.port = s.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name=f"{self.thread_name}-{self.port}")
        self._thread.start()
        return self

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            t = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            with self._lock:
                self._conns.add(conn)
                self._handlers.append(t)
            t.start()

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            conns = list(self._conns)
            self._conns.clear()
            handlers = list(self._handlers)
        for c in conns:
            # shutdown wakes a handler blocked on the socket; close alone would not
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                c.close()
        if self.join_handlers:
            for t in handlers:
                t.join(5)
