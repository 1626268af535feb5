"""The daemon's health endpoint: ``/livez``, ``/readyz`` and ``/metrics`` over plain HTTP.

Readiness is judged from the token file itself on every request (what readers will see), not
from what the loop believes it wrote. The server is an :class:`httpserve.BackgroundServer`, so
an idle daemon stays idle, and it shares that server's defences: a ``Host`` naming this machine,
connection limits and deadlines (see httpserve).
"""

from __future__ import annotations

import logging
import time

from .. import TYPE_CHECKING, httphandler, httpserve, tokenfile
from ..durations import format_duration
from ..errors import UsageError
from ..options import BY_DEST

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..identity.server import IdentityServer
    from ..idtoken import IdToken
    from .loop import HealthState

log = logging.getLogger("azfed_helper.health")

DEFAULT_HOST = "127.0.0.1"
CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8"


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (loopback) or ``[IPv6]:PORT`` to a (host, port) pair."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(
            f"invalid {BY_DEST['health_addr'].flag} {text!r}",
            "give HOST:PORT or :PORT (loopback), e.g. :8080, 0.0.0.0:8080 or [::1]:8080",
        )
    return host, int(port_text)


def _number(value: float) -> str:
    """A sample value without losing precision (``:g`` would round Unix times)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Checks:
    """The answers of the three endpoints, computed on each request."""

    def __init__(
        self,
        state: HealthState,
        token_file: str,
        audience: str,
        min_remaining: float,
        *,
        issuer: str | None,
        ours: bool = True,
        clock: Callable[[], float] = time.time,
        identity: IdentityServer | None = None,
    ) -> None:
        self.identity = identity
        self.state = state
        self.token_file = token_file
        self.audience = audience
        self.min_remaining = min_remaining
        self.issuer = issuer
        self.ours = ours  # False: another process's file (the file source), links followed
        self.clock = clock

    def live(self) -> tuple[bool, str]:
        """Live while the loop runs and is back from each sleep or refresh when it promised."""
        snapshot, now = self.state.snapshot(), self.clock()
        if not snapshot.running:
            return False, "the refresh loop is not running"
        if now > snapshot.expect_by:
            late = format_duration(now - snapshot.expect_by)
            return False, f"the refresh loop is stuck ({late} past its deadline)"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """Ready while the file is (and, with ``--identity-endpoint``, the endpoint is)."""
        ready, reason = self._file_ready()
        if self.identity is None:
            return ready, reason
        endpoint_ready, endpoint_reason = self.identity.ready()
        return ready and endpoint_ready, f"{reason}; endpoint: {endpoint_reason}"

    def _file_ready(self) -> tuple[bool, str]:
        """Ready while the file holds a token readers can still use for their reuse window."""
        now = self.clock()
        token = self._token(now, 0)
        if token is None:
            return False, f"no valid token in {self.token_file}"
        left = token.remaining(now)
        if left <= self.min_remaining:
            return False, (
                f"the token expires in {format_duration(left)}, "
                f"not more than {format_duration(self.min_remaining)}"
            )
        return True, f"ok: the token expires in {format_duration(left)}"

    def _token(self, now: float, margin: float) -> IdToken | None:
        return tokenfile.fresh_token(
            self.token_file, self.audience, now, margin, issuer=self.issuer, ours=self.ours
        )

    def metrics(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        snapshot, now = self.state.snapshot(), self.clock()
        token = self._token(now, float("-inf"))
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP azfed_{name} {help_text}")
            lines.append(f"# TYPE azfed_{name} {kind}")
            lines.extend(f"azfed_{name}{labels} {_number(value)}" for labels, value in samples)

        if token is not None:
            metric(
                "token_expires_in_seconds",
                "gauge",
                "Seconds until the token in the file expires (negative once expired).",
                [("", round(token.remaining(now), 3))],
            )
        metric("ready", "gauge", "1 while /readyz answers 200.", [("", float(self.ready()[0]))])
        metric(
            "token_refreshes_total",
            "counter",
            "Tokens written to the file.",
            [("", snapshot.refreshes)],
        )
        metric(
            "token_refresh_failures_total",
            "counter",
            "Failed refresh attempts by reason.",
            [
                (f'{{reason="{reason}"}}', count)
                for reason, count in sorted(snapshot.failures.items())
            ],
        )
        if snapshot.last_success is not None:
            metric(
                "token_last_success_timestamp_seconds",
                "gauge",
                "Unix time of the last successful refresh.",
                [("", round(snapshot.last_success, 3))],
            )
        if snapshot.next_refresh is not None:
            metric(
                "token_next_refresh_timestamp_seconds",
                "gauge",
                "Unix time of the next planned refresh or retry.",
                [("", round(snapshot.next_refresh, 3))],
            )
        text = "\n".join(lines) + "\n"
        return text + self.identity.metrics_text() if self.identity is not None else text


class _Handler(httphandler.Handler):
    log = log

    def do_GET(self) -> None:
        checks: Checks = self.server.context
        routes: dict[str, Callable[[], tuple[bool, str]]] = {
            "/livez": checks.live,
            "/readyz": checks.ready,
        }
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self.reply(200, checks.metrics().encode("utf-8"), CONTENT_TYPE_METRICS)
        elif path in routes:
            ok, text = routes[path]()
            self.reply(200 if ok else 503, (text + "\n").encode("utf-8"), httphandler.TEXT_PLAIN)
        else:
            self.refuse(404, "not found: try /livez, /readyz or /metrics")


class HealthServer(httpserve.BackgroundServer):
    """Serves ``checks`` on ``address`` in a daemon thread until :meth:`stop`."""

    def __init__(
        self, address: tuple[str, int], checks: Checks, limits: httpserve.Limits | None = None
    ) -> None:
        super().__init__(
            address,
            _Handler,
            checks,
            name="azfed-health",
            purpose=BY_DEST["health_addr"].flag,
            hint="choose another port or address",
            limits=limits,
        )

    def start(self) -> None:
        host, port = self.address
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        log.info(
            "health endpoint on http://%s/ (/livez /readyz /metrics)",
            shown,
            extra={"event": "health_listening", "address": shown},
        )
        if not httphandler.is_loopback(host):
            log.warning(
                "the health endpoint %s is reachable from other hosts; bind 127.0.0.1 unless a "
                "probe from outside this network namespace needs it",
                shown,
                extra={"event": "health_exposed", "address": shown},
            )
        super().start()
