"""Backfill: renditions for the files already in the org, as one planned, resumable run.

Not a self-requeuing chain of jobs (which can branch and re-process; Firebase's resize-images backfill was
removed for that): one run per org (:mod:`~services.backfill.runs`), one cursor over the candidates
(:mod:`~services.backfill.cursor`), advanced by one feeder at a time (:mod:`~services.backfill.feeder`, run
by the workers), which queues jobs on their own queue at the run's rate and holds below a safety margin of
the org's allowances. ``offload backfill`` (:mod:`~services.backfill.cli`) plans, starts and steers runs.
"""

QUEUE = "backfill"
"""The queue of every backfill job. Workers take it after every process's queue (rq takes the first non-empty
queue in the order given), so a live upload never waits behind a backfill."""

SOURCE = "backfill"
"""The envelope ``source`` of a backfill job."""
