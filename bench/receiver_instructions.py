"""Instructions per request of the receiver's callout path (or the no-op app), counted by callgrind.

    .venv/bin/python bench/receiver_instructions.py                   # receiver, 300 requests
    .venv/bin/python bench/receiver_instructions.py --app noop        # bench/_noop_app.py, same requests
    .venv/bin/python bench/receiver_instructions.py --requests 100 --profile /tmp/cg.out

Why instructions: wall-clock and even ``/proc`` CPU on the shared benchmark cores swing 1.5-2x between
minutes, while user-space instruction counts are deterministic to well under 1 %; the receiver's cost is
Python instructions, so a cut here shows up roughly 1:1 in gunicorn CPU (``docs/benchmarks.md``, Receiver).

What runs: a fresh ``redis-server`` on a free port (``--save '' --appendonly no``, stopped at the end), then
this script twice under ``valgrind --tool=callgrind``. Each child builds the app the way gunicorn's
``services.receiver.wsgi`` does (settings from the environment as in ``bench/receiver.py``), prepares
``--requests`` signed ``POST /callouts/resize-image`` bodies (distinct valid contentVersionIds, fresh
``sentAt``), serves ``--warmup`` of them untimed-but-counted (first-request costs: connections, lazy
caches) and then either all of the rest or none. The difference of the two instruction totals divided by
``--requests`` is the in-process cost of one request: the WSGI app called with a gunicorn-like environ,
the response iterated and closed; gunicorn's own parsing and socket work are not included.

``--profile PATH`` keeps the serving run's callgrind file (``callgrind_annotate --inclusive=yes PATH``).
Not a test: it prints numbers and asserts only that every response had the expected status.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from receiver import (  # noqa: E402  # the same bodies, secret and settings as the gunicorn benchmark
    APP_PATH,
    CALLOUT_PATH,
    NOOP_PATH,
    QUEUE_KEY,
    callout_body,
    free_port,
    web_env,
)

from devkit.embedded_redis import EmbeddedRedis  # noqa: E402
from services.signing import sign  # noqa: E402

APPS = {"receiver": APP_PATH, "noop": NOOP_PATH}


def environ(body: bytes, signature: str | None) -> dict[str, Any]:
    """What gunicorn's sync worker hands the app for one callout (gunicorn/http/wsgi.py, ``create``)."""
    env: dict[str, Any] = {
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": None,
        "wsgi.input_terminated": True,
        "SERVER_SOFTWARE": "gunicorn/27.0.1",
        "wsgi.input": io.BytesIO(body),
        "gunicorn.socket": None,
        "REQUEST_METHOD": "POST",
        "QUERY_STRING": "",
        "RAW_URI": CALLOUT_PATH,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.url_scheme": "http",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "PATH_INFO": CALLOUT_PATH,
        "SCRIPT_NAME": "",
    }
    if signature is not None:
        env["HTTP_X_OFFLOAD_SIGNATURE"] = signature
    return env


def child(args: argparse.Namespace) -> None:
    """Serve ``--warmup`` requests, then ``--serve`` more (0 for the baseline run), in-process."""
    import importlib

    from receiver import SECRET

    module, _, name = APPS[args.app].partition(":")
    app = getattr(importlib.import_module(module), name)
    bodies = [callout_body() for _ in range(args.warmup + args.requests)]
    envs = [environ(b, sign(b, SECRET) if args.app == "receiver" else None) for b in bodies]
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        statuses.append(status)

    for env in envs[: args.warmup + args.serve]:
        result = app(env, start_response)
        try:
            for _ in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    wrong = [s for s in statuses if not s.startswith("202")]
    if wrong:
        sys.exit(f"unexpected statuses: {wrong[:3]}")


def callgrind_total(path: Path) -> int:
    """The ``summary:``/``totals:`` Ir count of a callgrind output file."""
    text = path.read_text(errors="replace")
    match = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
    if match is None:
        raise RuntimeError(f"no totals in {path}")
    return int(match.group(1))


def run_child(args: argparse.Namespace, serve: int, out: Path, env: dict[str, str], client: Any) -> int:
    """One child under callgrind, against an emptied Redis (both runs start from the same state)."""
    client.flushall()  # our own redis-server, started above; the children reuse the same ids
    command = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
        sys.executable, str(Path(__file__).resolve()), "--child", "--app", args.app,
        "--requests", str(args.requests), "--warmup", str(args.warmup), "--serve", str(serve),
    ]
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return callgrind_total(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", choices=sorted(APPS), default="receiver")
    parser.add_argument("--requests", type=int, default=300, help="requests measured (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="requests served in both runs (default 20)")
    parser.add_argument("--profile", type=Path, help="keep the serving run's callgrind output here")
    parser.add_argument("--json", type=Path, help="write the numbers here too")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if shutil.which("valgrind") is None or shutil.which("redis-server") is None:
        sys.exit("needs valgrind and redis-server (apt-get install valgrind redis-server)")

    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(appendonly=False) as server:
        import redis

        client = redis.Redis.from_url(server.url)
        redis_port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        env = {**os.environ, **web_env(redis_port, free_port()), "PYTHONHASHSEED": "0"}
        env.pop("GUNICORN_CMD_ARGS", None)
        base = run_child(args, 0, Path(tmp) / "base.out", env, client)
        served_out = args.profile or Path(tmp) / "served.out"
        served = run_child(args, args.requests, served_out, env, client)
        jobs = client.llen(QUEUE_KEY) if args.app == "receiver" else None
    per_request = (served - base) / args.requests
    result = {"app": args.app, "requests": args.requests, "warmup": args.warmup, "base_instructions": base,
              "served_instructions": served, "instructions_per_request": round(per_request)}
    print(f"{args.app}: {per_request / 1000:,.1f} k instructions/request "
          f"({served:,} - {base:,} over {args.requests} requests; jobs queued {jobs})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
