"""A worker's command-listening thread lets the worker exit at once (workers/worker.py, **Exit**).

With rq's 60 s poll and redis-py 8's waiting ``PubSubWorkerThread.stop()``, a burst worker could hang
a minute on its way out (seen in CI: "unsubscribing from channel", then nothing until SIGTERM).
"""

from __future__ import annotations

import redis
from rq.queue import Queue

from workers.worker import PUBSUB_POLL_SECONDS, ForkingWorker, InProcessWorker


def test_both_worker_classes_poll_for_commands_briefly_and_stop_listening_on_exit(redis_conn: redis.Redis) -> None:
    for worker_class in (InProcessWorker, ForkingWorker):
        worker = worker_class([Queue("resize-image", connection=redis_conn)], connection=redis_conn)
        worker.subscribe()
        thread = worker.pubsub_thread
        assert thread is not None and thread.is_alive()
        assert thread.sleep_time <= PUBSUB_POLL_SECONDS, f"{worker_class.__name__} polls every {thread.sleep_time} s"
        channel = worker.pubsub_channel_name
        assert redis_conn.pubsub_numsub(channel) == [(channel.encode(), 1)]
        worker.unsubscribe()
        assert not thread.is_alive()
        assert redis_conn.pubsub_numsub(channel) == [(channel.encode(), 0)]
