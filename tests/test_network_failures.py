"""Broken network surroundings, as the CLI meets them: one table, one set of checks per case.

Each case runs the real CLI in a child process against the emulator or a misbehaving loopback
server and asserts the documented exit code, exactly one ``azfed-helper: error:`` line followed by
its ``hint:`` (retry notices may come before), no traceback, no "internal error", a bounded run
time, and that the token file and the token cache are as they were. (The lead merges this table
into tests/test_bad_input.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal import options
from azfed_helper._internal.entra import cache

from .conftest import cli_env, make_jwt, refusing_port, run_cli
from .netservers import SilentServer

TARGET = "other@emulated-project.iam.gserviceaccount.com"
SCOPE = "https://management.azure.com/.default"


@dataclass
class World:
    """What a case may point at: the emulator, a silent server, a closed port, files."""

    emulator: Any
    silent: SilentServer
    closed: str
    tmp: Path
    token_file: Path
    cache_dir: Path

    def key(self, **fields: str) -> str:
        path = self.emulator.write_service_account_key(self.tmp / "key.json")
        info = json.loads(path.read_text())
        info.update(fields)
        path.write_text(json.dumps(info))
        return str(path)


@dataclass
class Case:
    build: Callable[[World], tuple[list[str], dict[str, str]]]
    exit_code: int
    says: str
    within: float = 20.0  # seconds: a bound, never a measurement
    retries: int | None = None  # how many "retrying in" notices, when it matters
    setup: Callable[[World], None] = field(default=lambda world: None)


def _write(*args: str, **env: str) -> Callable[[World], tuple[list[str], dict[str, str]]]:
    """``write`` with ``args``/``env``, where "{silent}", "{closed}", "{iam}", "{key}" ... are
    filled in from the world."""

    def build(world: World) -> tuple[list[str], dict[str, str]]:
        return (
            ["write", "--token-file", str(world.token_file), *(_fill(a, world) for a in args)],
            {name: _fill(value, world) for name, value in env.items()},
        )

    return build


def _token(*args: str, **env: str) -> Callable[[World], tuple[list[str], dict[str, str]]]:
    """``token`` against the emulator's Entra, with ``args``/``env`` on top."""

    def build(world: World) -> tuple[list[str], dict[str, str]]:
        base = {**world.emulator.env(), "AZFED_CACHE_DIR": str(world.cache_dir)}
        base.update({name: _fill(value, world) for name, value in env.items()})
        return ["token", "--scope", SCOPE, *(_fill(a, world) for a in args)], base

    return build


def _fill(text: str, world: World) -> str:
    values = {
        "silent": world.silent.address,
        "closed": world.closed,
        "metadata": world.emulator.metadata_host,
        "iam": world.emulator.iam_endpoint,
        "google": world.emulator.google_url,
        "gone": str(world.tmp / "stopped-emulator-ca.pem"),
    }
    if "{key}" in text:
        values["key"] = world.key()
    if "{silent_key}" in text:
        values["silent_key"] = world.key(token_uri=f"http://{world.silent.address}/token")
    if "{refused_key}" in text:
        values["refused_key"] = world.key(token_uri=f"http://{world.closed}/token")
    if "{https_key}" in text:
        values["https_key"] = world.key(token_uri=f"https://{world.closed}/token")
    return text.format(**values)


IMPERSONATE = ("--impersonate", TARGET)

CASES: dict[str, Case] = {
    "metadata server silent": Case(
        _write("--source-timeout", "1s", GCE_METADATA_HOST="{silent}"),
        1,
        "no metadata server answered at {silent} (no answer within 1s)",
        within=3 * 1 + 2,
    ),
    "metadata server refuses connections": Case(
        _write(GCE_METADATA_HOST="{closed}"),
        1,
        "no metadata server answered at {closed} (connection refused)",
    ),
    "metadata host does not resolve (off Google Cloud)": Case(
        _write(GCE_METADATA_HOST="metadata.invalid"),
        1,
        "no metadata server answered at metadata.invalid (the host name does not resolve) and "
        "GOOGLE_APPLICATION_CREDENTIALS is not set",
        within=5,
    ),
    "metadata server answers 503": Case(
        _write(GCE_METADATA_HOST="{metadata}"),
        1,
        "service-accounts/default/identity: HTTP 503",
        setup=lambda world: world.emulator.fail_next("metadata.identity", 503, count=3),
    ),
    "metadata server refuses the ID token": Case(
        _write(GCE_METADATA_HOST="{metadata}"),
        1,
        "the metadata server at {metadata} refused an ID token: HTTP 403",
        setup=lambda world: world.emulator.fail_next("metadata.identity", 403),
    ),
    "key's token_uri silent": Case(
        _write("--source-timeout", "1s", "--credentials", "{silent_key}"),
        1,
        "http://{silent}/token: no answer within 1s",
        within=3 * 1 + 2,
    ),
    "key's token_uri refuses connections": Case(
        _write("--credentials", "{refused_key}"), 1, "http://{closed}/token: connection refused"
    ),
    "key's https token_uri with a deleted REQUESTS_CA_BUNDLE": Case(
        _write("--credentials", "{https_key}", REQUESTS_CA_BUNDLE="{gone}"),
        2,
        "REQUESTS_CA_BUNDLE names the CA bundle {gone}, which does not exist",
    ),
    "IAM endpoint refuses connections": Case(
        _write("--credentials", "{key}", *IMPERSONATE, "--iam-endpoint", "http://{closed}"),
        1,
        f"http://{{closed}}/v1/projects/-/serviceAccounts/{TARGET}:generateIdToken: "
        "connection refused",
    ),
    "IAM endpoint silent": Case(
        _write(
            "--source-timeout",
            "1s",
            "--credentials",
            "{key}",
            *IMPERSONATE,
            "--iam-endpoint",
            "http://{silent}",
        ),
        1,
        "generateIdToken: no answer within 1s",
        within=3 * 1 + 2,
    ),
    "IAM refuses the caller": Case(
        _write("--credentials", "{key}", *IMPERSONATE, "--iam-endpoint", "{iam}"),
        1,
        "Google refused to mint an ID token from service_account credentials",
        setup=lambda world: world.emulator.fail_next("iam.generateIdToken", 403),
    ),
    "--iam-endpoint is not an IAM Credentials API": Case(
        _write("--credentials", "{key}", *IMPERSONATE, "--iam-endpoint", "{google}/elsewhere"),
        1,
        "HTTP 404",
    ),
    "token: the Google source fails during the exchange": Case(
        _token("--credentials", "{key}", *IMPERSONATE, "--iam-endpoint", "http://{closed}"),
        1,
        "generateIdToken: connection refused",
        retries=0,  # reported once: the exchange does not retry a failed source
    ),
    "token: REQUESTS_CA_BUNDLE deleted": Case(
        _token("--credentials", "{key}", REQUESTS_CA_BUNDLE="{gone}"),
        2,
        "REQUESTS_CA_BUNDLE names the CA bundle {gone}, which does not exist",
    ),
    "token: CURL_CA_BUNDLE deleted": Case(
        _token("--credentials", "{key}", REQUESTS_CA_BUNDLE="", CURL_CA_BUNDLE="{gone}"),
        2,
        "CURL_CA_BUNDLE names the CA bundle {gone}, which does not exist",
    ),
    "token: Entra's certificate is not trusted": Case(
        _token("--credentials", "{key}", REQUESTS_CA_BUNDLE="", CURL_CA_BUNDLE=""),
        1,
        "cannot verify Entra's TLS certificate",
        within=10,  # not retried
    ),
    "token: Entra refuses connections": Case(
        _token("--credentials", "{key}", "--authority-host", "https://{closed}"),
        1,
        "cannot get a token from Entra at https://{closed} after 4 attempts: connection refused",
    ),
}


@pytest.fixture
def world(emulator: Any, tmp_path: Path) -> Iterator[World]:
    with SilentServer() as silent:
        yield World(
            emulator,
            silent,
            f"127.0.0.1:{refusing_port()}",
            tmp_path,
            tmp_path / "token",
            tmp_path / "cache",
        )


def _state(world: World) -> dict[str, bytes | None]:
    """The token file and the cache files (lock files aside), by name."""
    names = [world.token_file] + [
        world.cache_dir / name for name in (cache.TOKEN_CACHE, cache.HTTP_CACHE)
    ]
    return {str(path): path.read_bytes() if path.exists() else None for path in names}


@pytest.mark.parametrize("name", list(CASES))
def test_broken_network_surroundings(world: World, name: str) -> None:
    case = CASES[name]
    # An expired token in the file: `write` must refresh, and must leave it alone on failure.
    world.token_file.write_text(
        world.emulator.mint_google_id_token(lifetime=600, issued_at=time.time() - 3600)
    )
    case.setup(world)
    args, env = case.build(world)
    before = _state(world)
    started = time.monotonic()
    done = run_cli(*args, env=env)
    took = time.monotonic() - started
    says = _fill(case.says, world)
    assert done.returncode == case.exit_code, done.stderr
    lines = done.stderr.strip().splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("azfed-helper: error: ")]
    assert len(errors) == 1 and errors[0] == len(lines) - 2, done.stderr
    assert lines[-1].startswith("  hint: "), done.stderr
    assert all("retrying in" in line for line in lines[:-2]), done.stderr
    assert case.retries in (None, len(lines) - 2), done.stderr
    assert says in lines[-2]
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert done.stdout == ""
    assert took < case.within, done.stderr
    assert _state(world) == before


# -- a DNS server that never answers ----------------------------------------------------------


def test_a_dns_server_that_never_answers_is_bounded_by_the_request_timeouts(
    tmp_path: Path,
) -> None:
    """getaddrinfo has no timeout of its own: each edge (Google, GitHub Actions, Entra) gives up
    on a silent resolver within its request timeout, and says that DNS did not answer; a host
    that resolved once is connected to without a second lookup (tests/stingy_dns.py)."""
    probe = subprocess.run(
        ["unshare", "--net", "--mount", "ip", "link", "set", "lo", "up"],
        capture_output=True,
        check=False,
        timeout=30,
    )
    if probe.returncode != 0:
        pytest.skip("needs root and ip(8) for a network and mount namespace (unshare)")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:30 attempts:2\n")
    assertion = tmp_path / "assertion.jwt"
    assertion.write_text(make_jwt())
    app = ["--tenant-id", "t", "--client-id", "c", "--scope", SCOPE]
    base = {"AZFED_CACHE_DIR": str(tmp_path / "cache"), "AZFED_SOURCE_TIMEOUT": "1"}
    cases = {
        "google": (
            ["write", "--token-file", str(tmp_path / "token"), "--source", "google"],
            cli_env({**base, "GCE_METADATA_HOST": "metadata.example.com"}),
        ),
        "github-actions": (
            ["write", "--token-file", str(tmp_path / "token"), "--source", "github-actions"],
            cli_env({
                **base,
                options.ACTIONS_URL: "https://runner.example.com/idtoken?api-version=2.0",
                options.ACTIONS_TOKEN: "runner-secret",
            }),
        ),
        "entra": (
            ["token", *app, "--source", "file", "--assertion-file", str(assertion),
             "--authority-host", "https://login.example.com", "--entra-timeout", "1"],
            cli_env(base),
        ),
    }  # fmt: skip
    script = 'ip link set lo up && mount --bind "$0" /etc/resolv.conf && exec "$@"'
    done = subprocess.run(
        ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", script,
         str(resolv), sys.executable, str(Path(__file__).with_name("stingy_dns.py")),
         json.dumps(cases), "5"],
        env=cli_env(), capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert results.pop("premise_answered") is False  # unbounded, a lookup waits 60 s here
    # One answered lookup, then silence: the connection uses what that lookup found, and the
    # second request its pooled connection (no lookup to bound).
    assert results.pop("once") == [204, 204]
    # Six addresses that never answer: one connect timeout for all (urllib3 alone: one each).
    ended, took = results.pop("many")
    assert ended == "ConnectTimeout" and took < 3.0, (ended, took)
    hosts = {"google": "metadata.example.com", "github-actions": "runner.example.com",
             "entra": "login.example.com"}  # fmt: skip
    for name, (code, stdout, stderr) in results.items():
        lines = stderr.strip().splitlines()
        assert code == 1, stderr
        assert stdout == "" and "Traceback" not in stderr, stderr
        assert f"{hosts[name]} did not resolve within 1s (no answer from DNS" in lines[-2], stderr
        assert lines[-1].startswith("  hint: "), stderr
