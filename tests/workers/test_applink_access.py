"""AppLink jobs write back as the invoking user, then as the Authorized User: in-process workers, the org
emulator over HTTPS and the AppLink API stand-in over HTTP (devkit/applink/api.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from devkit.applink.api import AUTHORIZATION_NAME, AppLinkApi
from services.errors import SalesforcePermanentError
from services.queue import fetch_job
from services.salesforce.applink import fetch_authorization
from services.salesforce.client import TimeoutSession
from services.salesforce.sessions import store_session
from services.settings import Settings
from services.sfids import to_18
from tests.support.images import photo_jpeg
from tests.support.orgtools import create_record, renditions_of, upload_file
from tests.workers.test_resize_job import enqueue
from workers import runner


@pytest.fixture
def applink(org, worker_env, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppLinkApi]:
    """The add-on attached and an Authorized User configured, as docs/applink.md sets them."""
    with AppLinkApi(org) as api:
        for name, value in {**api.env(), "OFFLOAD_APPLINK_AUTHORIZATION": AUTHORIZATION_NAME}.items():
            monkeypatch.setenv(name, value)
        runner.worker_settings.cache_clear()
        yield api
    runner.worker_settings.cache_clear()


def applink_job(org, redis_conn: redis.Redis, worker_env, key: str, *, token: str | None = None,
                org_id: str | None = None) -> tuple[str, str]:
    source = upload_file(org, create_record(org, "Account", Name=key), photo_jpeg(800, 600, seed=len(key)), "a.jpg")
    ref = store_session(redis_conn, worker_env["OFFLOAD_SECRET_KEY"], token or org.issue_token())
    job_id = enqueue(redis_conn, {"contentVersionId": source}, key, source="applink", sessionRef=ref,
                     instanceUrl=org.base_url, orgId=org_id or to_18(org.org_id), userId="005000000000001AAA")
    return job_id, source


def test_the_invoking_users_token_writes_back_and_no_authorization_is_asked(org, applink, worker_env, redis_conn,
                                                                            run_jobs) -> None:
    token = org.issue_token()
    job_id, source = applink_job(org, redis_conn, worker_env, "context", token=token)
    run_jobs()
    assert fetch_job(redis_conn, job_id).get_status() == "finished"
    assert len(renditions_of(org, source)) == 3
    assert [t for t in org.state.tokens.all() if t.access_token == token][0].uses > 0
    assert not [t for t in org.state.tokens.all() if t.grant_type == "applink-authorization"]


def test_an_expired_token_falls_back_to_the_authorized_user(org, applink, worker_env, redis_conn, run_jobs) -> None:
    job_id, source = applink_job(org, redis_conn, worker_env, "expired")
    org.state.tokens.expire_all()
    run_jobs()
    assert fetch_job(redis_conn, job_id).get_status() == "finished"
    assert len(renditions_of(org, source)) == 3
    assert [t for t in org.state.tokens.all() if t.grant_type == "applink-authorization" and t.uses]


def test_a_token_whose_reference_expired_falls_back_too(org, applink, worker_env, redis_conn, run_jobs) -> None:
    job_id, source = applink_job(org, redis_conn, worker_env, "gone")
    for key in redis_conn.scan_iter("offload:session:*"):
        redis_conn.delete(key)
    run_jobs()
    assert fetch_job(redis_conn, job_id).get_status() == "finished" and len(renditions_of(org, source)) == 3


def test_without_an_authorized_user_an_expired_token_says_what_to_set(org, worker_env, redis_conn, run_jobs) -> None:
    job_id, source = applink_job(org, redis_conn, worker_env, "no-auth")
    org.state.tokens.expire_all()
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "failed" and job.meta["error_code"] == "SESSION_EXPIRED"
    assert "OFFLOAD_APPLINK_AUTHORIZATION" in job.latest_result().exc_string
    assert renditions_of(org, source) == []


def test_an_authorized_user_of_another_org_is_never_used(org, applink, worker_env, redis_conn, run_jobs) -> None:
    job_id, _ = applink_job(org, redis_conn, worker_env, "other-org", org_id=to_18("00D5g000000AbCd"))
    org.state.tokens.expire_all()
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "failed" and job.meta["error_code"] == "WRONG_ORG_AUTHORIZATION"


def test_an_untrusted_org_domain_never_gets_the_token(org, applink, worker_env, redis_conn, run_jobs) -> None:
    ref = store_session(redis_conn, worker_env["OFFLOAD_SECRET_KEY"], org.issue_token())
    job_id = enqueue(redis_conn, {"recordId": create_record(org, "Account", Name="x")}, "evil", source="applink",
                     sessionRef=ref, instanceUrl="https://attacker.example.com", orgId=to_18(org.org_id))
    run_jobs()
    job = fetch_job(redis_conn, job_id)
    assert job.get_status() == "failed" and job.meta["error_code"] == "UNTRUSTED_INSTANCE"


def test_the_authorizations_api_refuses_and_names_what_to_check(org, applink, worker_settings: Settings) -> None:
    settings = Settings.from_env({**applink.env(), "OFFLOAD_ORG_IDS": org.org_id})
    session = TimeoutSession(5)
    user = fetch_authorization(settings, session, AUTHORIZATION_NAME)
    assert user.org_id == to_18(org.org_id) and user.instance_url == org.base_url and user.access_token
    with pytest.raises(SalesforcePermanentError) as unknown:
        fetch_authorization(settings, session, "nobody")
    assert unknown.value.code == "APPLINK_AUTHORIZATION_NOT_FOUND"
    with pytest.raises(SalesforcePermanentError) as wrong_token:
        fetch_authorization(settings.replace(applink_token="wrong"), session, AUTHORIZATION_NAME)
    assert wrong_token.value.code == "APPLINK_AUTHORIZATION_NOT_FOUND"
    applink.authorized = False
    with pytest.raises(SalesforcePermanentError) as disconnected:
        fetch_authorization(settings, session, AUTHORIZATION_NAME)
    assert disconnected.value.code == "APPLINK_AUTHORIZATION_NOT_READY"
    with pytest.raises(SalesforcePermanentError) as unset:
        fetch_authorization(settings.replace(applink_api_url=""), session, AUTHORIZATION_NAME)
    assert unset.value.code == "APPLINK_NOT_CONFIGURED"
