"""A deadline on reading a request body: a body still arriving after ``OFFLOAD_BODY_TIMEOUT`` seconds is cut off.

Why: Heroku's router forwards the request body to the dyno as it arrives (it buffers only the request
line and headers, https://devcenter.heroku.com/articles/http-routing#request-buffering), and its 30 s
request timeout only starts once the whole body has been sent to the dyno
(https://devcenter.heroku.com/articles/request-timeout). So a client that promises
``Content-Length: 1000`` and sends one byte a second keeps whatever reads the body busy for as long as
it likes; under sync workers that was one of the three worker processes, until gunicorn's 30 s worker
timeout killed it.

How: a read from the server's input stream blocks in ``recv`` and cannot be given a total time limit
from outside (a per-``recv`` socket timeout is reset by every trickled byte). At the deadline a watcher
thread shuts the socket down for reading (``shutdown(SHUT_RD)``), which wakes the blocked ``recv`` with
end-of-file on Linux; the body comes back short, :func:`services.receiver.intake.read_body` sees that the
watcher fired and answers 408, and the socket is still open for writing that answer. The socket is the
one gunicorn hands the app as ``environ["gunicorn.socket"]``; under another server (the test client)
there is none and no deadline.

One watcher thread per process, started on first use (after gunicorn forks its workers), ticking every
:data:`TICK` seconds while anything is armed, so a deadline fires up to one tick late. Every arm uses the
same timeout, so deadlines are queued in the order they fall; finishing a read only marks its entry done
(no search, no lock on the request's path).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque
from typing import Any

TICK = 0.25
"""Seconds between the watcher's looks at the queue: how late a deadline may fire."""


class Watch:
    """One armed deadline: :attr:`fired` once the watcher cut the body off; set :attr:`done` when the read ends."""

    __slots__ = ("deadline", "sock", "done", "fired")

    def __init__(self, deadline: float, sock: socket.socket) -> None:
        self.deadline, self.sock, self.done, self.fired = deadline, sock, False, False


class BodyDeadlines:
    """The per-process watcher (use the module's :data:`DEADLINES`)."""

    def __init__(self) -> None:
        self._pid = -1
        self._queue: deque[Watch] = deque()
        self._wake = threading.Event()
        self._start = threading.Lock()

    def arm(self, environ: dict[str, Any], seconds: float) -> Watch | None:
        """Watch this request's socket for ``seconds``; None when the server gave the app no socket."""
        sock = environ.get("gunicorn.socket")
        if sock is None:
            return None
        if self._pid != os.getpid():
            self._start_watcher()
        watch = Watch(time.monotonic() + seconds, sock)
        self._queue.append(watch)
        if not self._wake.is_set():
            self._wake.set()
        return watch

    def _start_watcher(self) -> None:
        with self._start:
            if self._pid == os.getpid():
                return
            # A forked worker inherits the master's object but not its thread: start afresh.
            self._queue = deque()
            self._wake = threading.Event()
            threading.Thread(target=self._run, args=(self._queue, self._wake), name="offload-body-deadline",
                             daemon=True).start()
            self._pid = os.getpid()

    @staticmethod
    def _run(queue: deque[Watch], wake: threading.Event) -> None:
        while True:
            if not queue:
                wake.clear()
                if not queue:  # nothing armed: sleep until arm() sets the event
                    wake.wait()
            time.sleep(TICK)
            now = time.monotonic()
            while queue and queue[0].deadline <= now:
                watch = queue.popleft()
                if watch.done:
                    continue
                watch.fired = True
                try:
                    watch.sock.shutdown(socket.SHUT_RD)
                except OSError:
                    pass  # the connection is already gone


DEADLINES = BodyDeadlines()
