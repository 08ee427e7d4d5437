"""rq's scheduler still keeps its forked process where workers/rqcompat.py reads it."""

from __future__ import annotations

import redis
import rq
from rq.scheduler import RQScheduler

from workers.rqcompat import SCHEDULER_PROCESS_ATTRIBUTE, scheduler_process_alive


def test_rq_keeps_the_scheduler_process_where_we_read_it(redis_conn: redis.Redis) -> None:
    scheduler = RQScheduler(["resize-image"], connection=redis_conn)
    assert hasattr(scheduler, SCHEDULER_PROCESS_ATTRIBUTE), (
        f"rq {rq.__version__} no longer has RQScheduler.{SCHEDULER_PROCESS_ATTRIBUTE}: update workers/rqcompat.py "
        "(see how rq's BaseWorker.run_maintenance_tasks now checks its scheduler)")
    assert scheduler_process_alive(scheduler) is False
    process = scheduler.start()
    try:
        assert scheduler_process_alive(scheduler) is True
    finally:
        process.kill()
        process.join()
    assert scheduler_process_alive(scheduler) is False
    assert scheduler_process_alive(None) is False
