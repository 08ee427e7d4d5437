"""The rq worker the tests run jobs with in their own process: rq's ``SimpleWorker`` without its command channel.

rq's worker listens for commands (``rq.command.send_stop_job_command`` ...) on a pub/sub thread that polls every
60 s (``Worker.subscribe``: ``run_in_thread(sleep_time=60)``), and on the way out ``Worker.unsubscribe`` calls
redis-py 8's ``PubSubWorkerThread.stop()``, which waits for the thread's current poll to end. When the poll began
after the unsubscription was confirmed, that is the whole minute: the "~60 s stall" that hit a different test of
the full suite now and again (``tests/workers/test_worker_exit.py`` has the product side of the story). No test
sends a command to an in-process worker, so this one does not subscribe; the product's worker
(``workers/worker.py``) polls every second instead.
"""

from __future__ import annotations

from rq import SimpleWorker


class InProcessTestWorker(SimpleWorker):
    def subscribe(self) -> None:
        """No command channel (see the module docstring)."""

    def unsubscribe(self) -> None:
        """Nothing to leave."""
