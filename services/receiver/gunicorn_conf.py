"""gunicorn settings for the receiver, in the spirit of Heroku's python-getting-started.

Every value says why. gunicorn reads this file because the Procfile passes
``--config services/receiver/gunicorn_conf.py``; environment variables still win for the usual
knobs (``PORT``, ``WEB_CONCURRENCY``, ``GUNICORN_CMD_ARGS``).

Slow clients (Offload issue 15). gunicorn's sync worker serves one connection at a time, reading the
request itself, so it "requires a buffering proxy (nginx, HAProxy) for production"
(https://gunicorn.org/design, "Worker Types"; https://docs.gunicorn.org/en/stable/deploy.html: "When
using the default synchronous workers you must ensure the proxy buffers slow clients; otherwise Gunicorn
becomes vulnerable to denial-of-service attacks"). Heroku's router is not such a proxy for request
bodies: it reads the request line and headers before it picks a dyno but streams the body through
(https://devcenter.heroku.com/articles/http-routing#request-buffering; Heroku's own nginx buildpack says
the router "buffers only the headers of inbound requests" and so "engages the dyno during the entire body
transfer", https://github.com/heroku/heroku-buildpack-nginx), and its 30 s timeout starts only once the
whole body has reached the dyno (https://devcenter.heroku.com/articles/request-timeout). Under 3 sync
workers three slow clients stopped the receiver (0 of 20 probes answered over 50 s), and one body
promising more than it sent held a worker until gunicorn's 30 s timeout killed it.

So: gthread workers, each with :data:`threads` threads, and no worker process takes more connections
than it has threads (:data:`worker_connections`), so a connection is never queued behind a slow one
inside a process while another process has room; a body that has not all arrived within
``OFFLOAD_BODY_TIMEOUT`` seconds (10) is answered 408 and frees its thread
(services/receiver/deadline.py). A connection that sends nothing at all is closed after gunicorn's 5 s
wait for data; slow *headers* hold a thread until they end (gunicorn has no header deadline), which on
Heroku cannot happen because the router has read them first, and elsewhere is bounded by the thread count
and gunicorn's limits on header count and size. ``bench/slow_clients.py`` measures it: /healthz and a
signed callout stay answered in milliseconds with 50 slow connections open (docs/benchmarks.md).
"""

import os

# Heroku routes traffic to $PORT; bind all interfaces so the router can reach us.
# (IPv4 0.0.0.0 as the contract says; Heroku's sample uses [::] for IPv6-only
# environments, which our dynos are not.)
# With Heroku AppLink the service mesh takes $PORT and forwards to the app on $APP_PORT
# (https://github.com/heroku/heroku-integration-service-mesh: "listens on external $PORT. Service mesh
# managed apps listen on internal $APP_PORT"; the mesh connects to http://127.0.0.1:$APP_PORT). So then
# bind the loopback interface only: nothing but the mesh, inside the dyno, can reach the app, which is
# what lets /applink/<process> trust the x-client-context header (services/receiver/applink.py).
if os.environ.get("APP_PORT", "").strip():
    bind = f"127.0.0.1:{os.environ['APP_PORT'].strip()}"
else:
    bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"

# 3 worker processes on 2 cores (WEB_CONCURRENCY is Heroku's convention for the count, set per dyno
# size), each a pool of threads, so a slow client costs one thread, not a whole process (see the
# module docstring). The threads mostly wait on sockets; the GIL still lets each process run one
# request's Python at a time; measured: ~28 % less saturation throughput than sync workers, the price of
# staying up under slow clients (docs/benchmarks.md, "Slow clients and gthread workers").
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = 64

# A worker stops accepting once it holds as many connections as it has threads, so a new connection
# waits in the kernel's queue for a process with a free thread instead of inside a busy one (gunicorn's
# default, 1000, lets one process take connections it cannot serve yet).
worker_connections = threads

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

# No keep-alive: every connection is closed after its response, as the sync workers did. gthread keeps an
# idle keep-alive connection on the process that accepted it; measured with wrk's 16 kept-alive
# connections on 2 cores, that parked them all on one worker process in about half the runs and halved
# throughput. Closing each connection lets whichever process is free take the next request. Heroku's
# router opens a connection per request anyway
# (https://devcenter.heroku.com/articles/http-routing#dyno-connection-behavior-on-the-common-runtime).
keepalive = 0

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
