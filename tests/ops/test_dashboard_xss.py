"""A job's error is attacker-chosen text (file names are): the dashboard must show it, never run it.

rq-dashboard 0.9 puts the job JSON into ``innerHTML`` unescaped. Two defences, each tested alone:
the JSON of those views is HTML-escaped, and every /rq page has a hash-based Content-Security-Policy.
The browser tests drive Debian's headless Chromium (``.ci/run`` installs ``chromium`` and
``chromium-driver``); without it they skip, unless ``OFFLOAD_REQUIRE_BROWSER=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from rq.job import Job
from werkzeug.serving import make_server

from services.queue import fetch_job
from services.receiver import dashboard
from tests.support.ops import ADMIN, PASSWORD, envelope

MARKUP = '<img src=x onerror="window.__pwned = 1">'


@pytest.fixture
def hostile_job(enqueue: Callable[..., Job], work: Callable[[], None], redis_conn: redis.Redis) -> Job:
    """A job that failed with an error message holding markup (the process name is echoed in it)."""
    job = enqueue(envelope(process=MARKUP))
    work()
    job = fetch_job(redis_conn, job.id)
    assert job is not None and job.get_status() == "failed"
    assert MARKUP in (job.latest_result().exc_string or "")  # type: ignore[union-attr]
    return job


def test_the_job_view_json_is_html_escaped(ops_client: Any, hostile_job: Job) -> None:
    info = ops_client.get(f"/rq/0/data/job/{hostile_job.id}.json", headers=ADMIN).get_json()
    assert "<img" not in json.dumps(info)
    assert "&lt;img src=x onerror=&quot;window.__pwned = 1&quot;&gt;" in info["exc_info"]


def test_the_jobs_list_json_is_not_escaped_twice(ops_client: Any, hostile_job: Job) -> None:
    """jobs.html escapes exc_info itself; escaping it here too would show ``&lt;`` to the operator."""
    listed = ops_client.get("/rq/0/data/jobs/resize-image/failed/8/asc/1.json", headers=ADMIN).get_json()
    assert MARKUP in listed["jobs"][0]["exc_info"]


def test_every_dashboard_answer_has_a_csp_that_allows_only_the_pages_own_scripts(ops_client: Any,
                                                                                 hostile_job: Job) -> None:
    page = ops_client.get(f"/rq/0/view/job/{hostile_job.id}", headers=ADMIN)
    policy = page.headers["Content-Security-Policy"]
    script_src = next(d for d in policy.split("; ") if d.startswith("script-src "))
    assert "'unsafe-inline'" not in script_src and "'unsafe-hashes'" not in script_src
    assert script_src.count("'sha256-") == 1  # base.html's one inline script (the template one is not JS)
    assert "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    for path, headers in [("/rq/0/data/queues.json", ADMIN), ("/rq/", {})]:  # JSON, and the 401 challenge
        answer = ops_client.get(path, headers=headers)
        assert answer.headers["Content-Security-Policy"].startswith("default-src 'self'"), path
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_the_policy_hashes_exactly_the_inline_scripts() -> None:
    page = ('<script src="/a.js"></script><script type="text/template"><%= x %></script>'
            "<script>alert(1)</script>")
    policy = dashboard.content_security_policy(page)
    # printf 'alert(1)' | openssl dgst -sha256 -binary | base64
    assert "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='" in policy
    assert policy.count("'sha256-") == 1


# --- in a real browser ---------------------------------------------------------------------------

def _browser_paths() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    reason = "headless Chromium is not installed (Debian: apt-get install chromium chromium-driver)"
    if os.environ.get("OFFLOAD_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + "; OFFLOAD_REQUIRE_BROWSER=1 says this run must have it")
    pytest.skip(reason)


@pytest.fixture
def served(ops_app: Any) -> Iterator[str]:
    """The receiver (dashboard on) on a real socket."""
    server = make_server("127.0.0.1", 0, ops_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium, driver_path = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    # The flags that keep Chromium from dialling out on a closed network, and from needing a sandbox as root.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        token = __import__("base64").b64encode(f"admin:{PASSWORD}".encode()).decode()
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})
        # Runs before the page's own scripts and is not subject to its CSP: records what the CSP blocked.
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": (
            "window.__violations = [];"
            "document.addEventListener('securitypolicyviolation',"
            " e => window.__violations.push(e.effectiveDirective));")})
        yield driver
    finally:
        driver.quit()


def _open_job_view(browser: Any, base: str, job: Job) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{base}/rq/0/view/job/{job.id}")
    # The page's own scripts ran (the CSP lets them) and rendered the job, error included.
    WebDriverWait(browser, 15).until(lambda d: d.execute_script(
        "var pre = document.querySelector('#job-data pre.exc_info');"
        "return pre !== null && pre.textContent.indexOf('UnknownProcess') >= 0;"))


def test_in_chromium_the_job_view_shows_the_markup_as_text_and_runs_nothing(served: str, browser: Any,
                                                                            hostile_job: Job) -> None:
    _open_job_view(browser, served, hostile_job)
    shown = browser.execute_script("return document.querySelector('#job-data pre.exc_info').textContent;")
    assert MARKUP in shown  # the operator reads exactly what the error says
    assert browser.execute_script("return document.querySelectorAll('#job-data img').length;") == 0
    assert browser.execute_script("return window.__pwned === undefined;")


def test_in_chromium_the_csp_alone_stops_the_handler(served: str, browser: Any, hostile_job: Job,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With the escaping switched off the markup becomes an element; the CSP must still block its handler."""
    from selenium.webdriver.support.ui import WebDriverWait

    monkeypatch.setattr(dashboard, "_RENDERED_RAW", frozenset())
    _open_job_view(browser, served, hostile_job)
    assert browser.execute_script("return document.querySelectorAll('#job-data img').length;") >= 1
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return window.__violations.length > 0;"))
    assert "script-src-attr" in browser.execute_script("return window.__violations;")
    assert browser.execute_script("return window.__pwned === undefined;")
