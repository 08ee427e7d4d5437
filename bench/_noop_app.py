"""The no-op baseline for bench/receiver.py: same Flask, same gunicorn config, no auth and no Redis.

``POST /callouts/<name>`` parses a small JSON body, checks its fields (an 18-character id by regex, a
string ``sentAt``) and answers 202 with a small JSON body: the no-op baseline of the receiver
measurements in docs/benchmarks.md ("Receiver"). Served as ``bench._noop_app:app`` by the Procfile's web command.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask, request

app = Flask(__name__)

_ID = re.compile(r"[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/callouts/<name>")
def noop(name: str) -> tuple[dict[str, Any], int]:
    try:
        data = json.loads(request.get_data(cache=False))
    except ValueError:
        return {"error": "not JSON"}, 400
    if not isinstance(data, dict) or not isinstance(data.get("sentAt"), str):
        return {"error": "bad body"}, 400
    record = data.get("contentVersionId")
    if not isinstance(record, str) or not _ID.fullmatch(record):
        return {"error": "bad id"}, 400
    return {"jobId": None, "status": "queued"}, 202
