"""gunicorn settings for the receiver, in the spirit of Heroku's python-getting-started.

Every value says why. gunicorn reads this file because the Procfile passes
``--config services/receiver/gunicorn_conf.py``; environment variables still win for the usual
knobs (``PORT``, ``WEB_CONCURRENCY``, ``GUNICORN_CMD_ARGS``).
"""

import os

# Heroku routes traffic to $PORT; bind all interfaces so the router can reach us.
# (IPv4 0.0.0.0 as the contract says; Heroku's sample uses [::] for IPv6-only
# environments, which our dynos are not.)
bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"

# Sync workers, 2-3 per core. gthread was measured to park every keep-alive
# connection on one worker process in about half the runs on 2 cores, halving
# throughput; sync workers close each connection, which spreads load evenly
# (docs/benchmarks.md). WEB_CONCURRENCY is Heroku's
# convention for the worker count and is set per dyno size.
worker_class = "sync"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))

# Heroku's router terminates TLS and says so in X-Forwarded-Proto
# (https://devcenter.heroku.com/articles/http-routing#heroku-headers); it connects from addresses we
# cannot list, and a dyno is reachable only through it, so on Heroku (DYNO is set) every peer is
# trusted for those headers. Elsewhere gunicorn's default, 127.0.0.1 only, stands
# (https://docs.gunicorn.org/en/stable/settings.html#forwarded-allow-ips). Without this, statusUrl
# and the OpenAPI servers URL said http:// behind the router.
if os.environ.get("DYNO"):
    forwarded_allow_ips = "*"

# Salesforce Outbound Messages are answered in milliseconds; a request that
# takes 30 s is broken. Heroku's router gives up at 30 s too.
timeout = 30

# Less than the 30 s Heroku gives a dyno between SIGTERM and SIGKILL, so
# in-flight requests finish (Heroku Dev Center, "Dyno shutdown").
graceful_timeout = 20

# Above the Heroku router's 90 s idle timeout, so the router closes first.
keepalive = 95

# Logs to stdout (Heroku collects them), access log in logfmt with the router's request id.
accesslog = "-"
errorlog = "-"
access_log_format = (
    'at=info method=%(m)s path="%(U)s" status=%(s)s bytes=%(B)s duration_ms=%(M)s '
    'request_id=%({x-request-id}i)s'
)

# Import the app before forking: one copy of the code, faster worker restarts.
# Each worker still opens its own Redis connections (the client is lazy).
preload_app = True

# The receiver reads no request headers larger than this; Salesforce sends small ones.
limit_request_field_size = 8190

# gunicorn 24+ opens a control socket at one fixed path per user ($HOME/.gunicorn/gunicorn.ctl),
# so two gunicorns on one machine (tests, dev, a benchmark) would fight over it; we don't use it.
control_socket_disable = True


# Prometheus request metrics summed over every gunicorn worker (services/ops/metrics.py): each
# worker writes its own files to PROMETHEUS_MULTIPROC_DIR; the directory starts empty and a
# dead worker's gauges are dropped (prometheus-client docs, "Multiprocess Mode").
def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
