"""health: address parsing, the three answers from state + file, and the real HTTP server."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from azfed_helper._internal import httphandler
from azfed_helper._internal.errors import UsageError
from azfed_helper._internal.idtoken import GOOGLE_ISSUER
from azfed_helper._internal.options import DEFAULT_AUDIENCE
from azfed_helper._internal.sidecar import health
from azfed_helper._internal.sidecar.loop import HealthState

from .conftest import make_jwt


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:9", ("0.0.0.0", 9)),
        ("[::1]:80", ("::1", 80)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert health.parse_address(text) == expected


@pytest.mark.parametrize("text", ["8080", "host:", ":http", ":70000"])
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        health.parse_address(text)


def test_loopback_detection() -> None:
    assert httphandler.is_loopback("127.0.0.1") and httphandler.is_loopback("::1")
    assert httphandler.is_loopback("localhost")
    assert not httphandler.is_loopback("0.0.0.0") and not httphandler.is_loopback("10.0.0.1")


def checks_at(state: HealthState, path: Path, now: float) -> health.Checks:
    return health.Checks(
        state, str(path), DEFAULT_AUDIENCE, 600, issuer=GOOGLE_ISSUER, clock=lambda: now
    )


def test_live_follows_the_loops_promised_deadline(tmp_path: Path) -> None:
    state = HealthState()
    assert not checks_at(state, tmp_path / "t", 100).live()[0]
    state.update(running=True, expect_by=130.0)
    assert checks_at(state, tmp_path / "t", 100).live() == (True, "ok")
    ok, reason = checks_at(state, tmp_path / "t", 131).live()
    assert not ok and "stuck" in reason


def test_ready_judges_the_file_against_min_remaining(tmp_path: Path) -> None:
    path = tmp_path / "token"
    now = int(time.time())
    state = HealthState()
    assert not checks_at(state, path, now).ready()[0]  # missing file
    path.write_text(make_jwt(iat=now - 2000, exp=now + 1000))
    assert checks_at(state, path, now).ready()[0]
    assert not checks_at(state, path, now + 401).ready()[0]  # 599 s left: below the readers' 600
    assert not checks_at(state, path, now + 2000).ready()[0]  # expired


def test_metrics_exposition_format(tmp_path: Path) -> None:
    path = tmp_path / "token"
    now = int(time.time())
    path.write_text(make_jwt(iat=now - 100, exp=now + 3500))
    state = HealthState()
    state.update(refreshes=3, last_success=now - 100.0, next_refresh=now + 2000.0)
    state.count_failure("source")
    text = checks_at(state, path, now).metrics()
    assert text.endswith("\n")
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert line.split()[1] in ("HELP", "TYPE") and line.split()[2].startswith("azfed_")
        else:
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples["azfed_token_expires_in_seconds"] == 3500
    assert samples["azfed_ready"] == 1
    assert samples["azfed_token_refreshes_total"] == 3
    assert samples['azfed_token_refresh_failures_total{reason="source"}'] == 1
    assert samples['azfed_token_refresh_failures_total{reason="token_file"}'] == 0
    assert samples["azfed_token_last_success_timestamp_seconds"] == now - 100
    assert samples["azfed_token_next_refresh_timestamp_seconds"] == now + 2000
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(names) == len(set(names))


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_server_answers_and_stops(tmp_path: Path) -> None:
    path = tmp_path / "token"
    now = int(time.time())
    path.write_text(make_jwt(iat=now, exp=now + 3600))
    state = HealthState()
    state.update(running=True, expect_by=time.time() + 60)
    server = health.HealthServer(
        ("127.0.0.1", 0),
        health.Checks(state, str(path), DEFAULT_AUDIENCE, 600, issuer=GOOGLE_ISSUER),
    )
    assert not server.running
    server.start()
    base = f"http://127.0.0.1:{server.address[1]}"
    try:
        assert server.running
        assert get(base + "/livez")[0] == 200
        status, _, body = get(base + "/readyz")
        assert status == 200 and body.startswith("ok")
        status, content_type, body = get(base + "/metrics")
        assert status == 200 and "version=0.0.4" in content_type
        assert "azfed_ready 1" in body
        assert get(base + "/nope")[0] == 404
        path.write_text(make_jwt(iat=now - 3500, exp=now + 100))
        assert get(base + "/readyz")[0] == 503
    finally:
        assert server.stop()
    assert not server.running and not server.stop()  # a second stop is a no-op
    with pytest.raises(OSError):
        urllib.request.urlopen(base + "/livez", timeout=2)


def test_port_in_use_is_a_usage_error(tmp_path: Path) -> None:
    checks = health.Checks(
        HealthState(), str(tmp_path / "t"), DEFAULT_AUDIENCE, 600, issuer=GOOGLE_ISSUER
    )
    first = health.HealthServer(("127.0.0.1", 0), checks)
    try:
        with pytest.raises(UsageError, match="cannot listen"):
            health.HealthServer(first.address, checks)
    finally:
        first.stop()
