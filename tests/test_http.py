"""HTTP access: the real bluesky HTTP server in front of adscan's RE Manager.

Real processes on loopback: the session's simulated IOC, Redis and the RE Manager started by
the conftest ``service`` (a private RE Manager, environment open, ``profile_collection/``), and
``start-bluesky-httpserver --host 127.0.0.1 --port <free>`` with a random single-user API key
from ``QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY``.  A plan is queued and run through
``bluesky_queueserver_api.http.REManagerAPI``; requests without the key must be refused.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from bluesky_queueserver_api import BPlan

from adscan.ports import free_port

pytestmark = pytest.mark.timeout(600)

HTTP_SERVER = Path(sys.executable).with_name("start-bluesky-httpserver")


def _request(
    url: str, *, key: str | None = None, data: dict | None = None, timeout: float = 10.0
) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"ApiKey {key}"
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(
        url, data=body, headers=headers, method="POST" if data is not None else "GET"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@pytest.fixture(scope="module")
def http_server(service, tmp_path_factory):
    """``start-bluesky-httpserver`` on a free loopback port; yields (base URL, API key)."""
    exe = str(HTTP_SERVER) if HTTP_SERVER.exists() else shutil.which("start-bluesky-httpserver")
    assert exe, "start-bluesky-httpserver not installed (pin bluesky-httpserver in pyproject)"
    key = secrets.token_hex(24)
    port = free_port()
    qs = service["queueserver"]
    env = dict(
        os.environ,
        QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY=key,
        QSERVER_ZMQ_CONTROL_ADDRESS=qs["zmq_control_addr"],
        QSERVER_ZMQ_INFO_ADDRESS=qs["zmq_info_addr"],
    )
    for var in ("QSERVER_HTTP_SERVER_CONFIG", "QSERVER_HTTP_SERVER_ALLOW_ANONYMOUS_ACCESS"):
        env.pop(var, None)
    log_path = tmp_path_factory.mktemp("httpserver") / "httpserver.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed in teardown
    proc = subprocess.Popen(
        [exe, "--host", "127.0.0.1", "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(log_path.parent),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "HTTP server exited:\n" + log_path.read_text()[-3000:]
            try:
                code, _ = _request(f"{base}/api/status", key=key, timeout=2)
                if code == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            assert time.monotonic() < deadline, (
                "HTTP server not answering:\n" + log_path.read_text()[-3000:]
            )
            time.sleep(0.2)
        yield base, key
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture(scope="module")
def http_api(http_server):
    from bluesky_queueserver_api.http import REManagerAPI

    base, key = http_server
    api = REManagerAPI(http_server_uri=base, status_polling_period=0.2, timeout=30)
    api.set_authorization_key(api_key=key)
    yield api
    api.close()


def test_http_server_listens_on_loopback_only(http_server):
    base, _ = http_server
    assert base.startswith("http://127.0.0.1:")


def test_http_requests_without_key_are_refused(http_server):
    base, key = http_server
    code, body = _request(f"{base}/api/status")
    assert code in (401, 403), (code, body)
    code, _ = _request(f"{base}/api/status", key=secrets.token_hex(24))
    assert code in (401, 403)
    code, _ = _request(
        f"{base}/api/queue/item/add",
        data={
            "item": {"item_type": "plan", "name": "adscan_count", "kwargs": {"num": 1, "frames": 1}}
        },
    )
    assert code in (401, 403)
    code, status = _request(f"{base}/api/status", key=key)
    assert code == 200 and status["worker_environment_exists"] is True


def test_http_plans_allowed_lists_adscan_plans(http_api):
    plans = http_api.plans_allowed()["plans_allowed"]
    assert {"adscan_count", "adscan_scan", "adscan_scan2", "adscan_grid_scan"} <= set(plans)
    assert {"m1", "m2", "simdet"} <= set(http_api.devices_allowed()["devices_allowed"])


def test_http_submit_and_run_adscan_count(http_api, service):
    n0 = http_api.status()["items_in_history"]
    result = http_api.item_add(BPlan("adscan_count", num=2, frames=2))
    assert result["success"], result["msg"]
    item_uid = result["item"]["item_uid"]
    http_api.queue_start()
    http_api.wait_for_idle(timeout=120)
    history = http_api.history_get()["items"]
    assert len(history) == n0 + 1
    item = history[-1]
    assert item["item_uid"] == item_uid and item["name"] == "adscan_count"
    assert item["result"]["exit_status"] == "completed", item["result"]
    (run_uid,) = item["result"]["run_uids"]

    from adscan.data.catalog import open_catalog

    run = open_catalog(service)[run_uid]
    assert run.metadata["stop"]["exit_status"] == "success"
    assert run.primary.read()["simdet_image"].shape == (2, 2, 1024, 1024)


def test_http_raw_rest_item_add_with_key(http_server, http_api):
    """The REST call documented for curl: POST /api/queue/item/add with the ApiKey header."""
    base, key = http_server
    code, body = _request(
        f"{base}/api/queue/item/add",
        key=key,
        data={
            "item": {"item_type": "plan", "name": "adscan_count", "kwargs": {"num": 1, "frames": 1}}
        },
    )
    assert code == 200 and body["success"], body
    code, queue = _request(f"{base}/api/queue/get", key=key)
    assert code == 200 and [i["name"] for i in queue["items"]] == ["adscan_count"]
    code, body = _request(f"{base}/api/queue/clear", key=key, data={})
    assert code == 200 and body["success"], body
