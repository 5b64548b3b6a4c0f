"""Doorbells: wake-ups between processes sharing one SQLite database, with no polling.

SQLite has no way to tell another process that a row arrived, so a waiter would have to
poll: slow to notice (each poll interval adds latency) and busy when idle. Instead every
waiting thread owns a Unix datagram socket in a directory beside the database's name;
a writer that committed something worth waking for "rings" every socket of that kind::

    waiter:  bind socket ─▶ check the database ─▶ nothing? recv(timeout) ─▶ check again
    writer:  commit ─▶ ring: one datagram to each "reserve-…" (or "result-…") socket

No wake-up is lost: the socket is bound *before* the check, and a datagram sent between
the check and ``recv`` waits in the socket's buffer. A stale datagram only causes one
extra check. A ring reuses its last listing of the directory while the directory's
modification time is unchanged (binding or removing a socket changes it), so a ring
costs a ``stat`` and a datagram per socket, not a listing. A listing taken within
``SETTLE_S`` of that time is not trusted (the file system's clock is coarse: a socket
bound just after it could leave the time as it was), and none is used for longer than
``MAX_LISTING_AGE_S``. A socket whose process
died refuses datagrams and is removed by the next ring. If the directory cannot be used
(another user owns it, a non-Unix system), the bells are off and waiters fall back to
sleeping out their timeout slices, which callers keep short.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import socket
import tempfile
import threading
import time
import uuid
import weakref

__all__ = ["Doorbells"]

#: longest a waiter sleeps without a ring, so a missed ring costs little
MAX_SLEEP = 0.5
#: a listing taken this soon after the directory's modification time is taken again by
#: the next ring: file systems stamp times from a clock that ticks every few milliseconds
SETTLE_S = 0.02
#: and a listing is never reused for longer than this, whatever the time says
MAX_LISTING_AGE_S = 1.0


class Doorbells:
    """The doorbells of one database file."""

    def __init__(self, database: str) -> None:
        digest = hashlib.sha256(os.path.realpath(database).encode()).hexdigest()[:16]
        self.directory = os.path.join(tempfile.gettempdir(), f"taskmill-bells-{digest}")
        self.enabled = hasattr(socket, "AF_UNIX") and self._prepare_directory()
        self._local = threading.local()
        self._mine: list[tuple[int, socket.socket, str]] = []  # (pid, socket, path)
        #: kind -> (when listed, the directory's time then, its socket paths), in ns;
        #: replaced whole, never mutated
        self._listings: dict[str, tuple[int, int, tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def _prepare_directory(self) -> bool:
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            info = os.stat(self.directory)
        except OSError:
            return False
        return info.st_uid == os.getuid() and not info.st_mode & 0o077

    def _socket(self, kind: str) -> socket.socket | None:
        """This thread's socket for ``kind``, bound on first use (and again after fork)."""
        if not self.enabled:
            return None
        sockets: dict[str, socket.socket] | None = getattr(self._local, "sockets", None)
        if sockets is None or self._local.pid != os.getpid():
            sockets = self._local.sockets = {}
            self._local.pid = os.getpid()
        sock = sockets.get(kind)
        if sock is None:
            if not self._prepare_directory():  # a closing broker may have removed it
                return None
            path = os.path.join(self.directory, f"{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(path)
            except OSError:
                sock.close()
                return None
            sockets[kind] = sock
            with self._lock:
                self._mine.append((os.getpid(), sock, path))
        return sock

    def listen(self, kind: str) -> None:
        """Be ready for rings of ``kind``: call before checking the database."""
        self._socket(kind)

    def wait(self, kind: str, timeout: float) -> None:
        """Sleep until a ring of ``kind`` or ``timeout`` (at most MAX_SLEEP) seconds."""
        timeout = max(0.0, min(timeout, MAX_SLEEP))
        sock = self._socket(kind)
        if sock is None:
            threading.Event().wait(timeout)
            return
        sock.settimeout(timeout)
        try:
            sock.recv(16)
        except (TimeoutError, BlockingIOError):
            return
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while sock.recv(16):  # several rings while we were busy: one check covers all
                pass

    def ring(self, kind: str) -> None:
        """Wake every waiter of ``kind``."""
        if not self.enabled:
            return
        sender = self._sender()
        for path in self._listing(kind):
            self._ring_one(sender, path)

    def _listing(self, kind: str) -> tuple[str, ...]:
        """The paths of the ``kind`` sockets: the last listing while the directory has
        not changed since it (see the module's docstring), else a new one."""
        now = time.time_ns()
        try:
            changed = os.stat(self.directory).st_mtime_ns
        except OSError:
            return ()
        listed, seen, paths = self._listings.get(kind, (0, -1, ()))
        if (
            changed != seen
            or listed - changed < SETTLE_S * 1e9
            or now - listed > MAX_LISTING_AGE_S * 1e9
        ):
            try:
                names = os.listdir(self.directory)
            except OSError:
                return ()
            prefix = self.directory + os.sep
            paths = tuple(prefix + name for name in names if name.startswith(kind))
            self._listings[kind] = (now, changed, paths)
        return paths

    def _sender(self) -> socket.socket:
        """This thread's unbound socket for ringing, made once (and again after fork);
        closed when the thread ends or the bells close."""
        held: _Sender | None = getattr(self._local, "sender", None)
        if held is None or held.pid != os.getpid():
            held = self._local.sender = _Sender()
        return held.sock

    @staticmethod
    def _ring_one(sender: socket.socket, path: str) -> None:
        try:
            sender.sendto(b"!", path)
        except BlockingIOError:
            pass  # its buffer is full of rings already
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                with contextlib.suppress(OSError):
                    os.unlink(path)  # its process is gone

    def close(self) -> None:
        """Close this process's sockets, of every thread, and remove their files.

        Sockets inherited from a parent process are left alone: they are the parent's.
        """
        self._local.sockets = {}
        self._local.sender = None
        with self._lock:
            mine = [m for m in self._mine if m[0] == os.getpid()]
            self._mine = [m for m in self._mine if m[0] != os.getpid()]
        for _, sock, path in mine:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(self.directory)  # only if no other process has a socket there


class _Sender:
    """A thread's socket for ringing. The thread's locals go when it ends, and with them
    this holder, whose finalizer closes the socket (also at interpreter exit)."""

    __slots__ = ("__weakref__", "pid", "sock")

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        weakref.finalize(self, self.sock.close)
