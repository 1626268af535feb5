"""The ``github-actions`` source: the runner's OIDC token endpoint.

In a job with ``permissions: id-token: write`` the runner sets ``ACTIONS_ID_TOKEN_REQUEST_URL``
(it already has a query string) and ``ACTIONS_ID_TOKEN_REQUEST_TOKEN``, a bearer for that
endpoint. ``GET URL&audience=AUD`` with ``Authorization: bearer TOKEN`` answers
``{"value": JWT}``; the JWT lives 5 minutes. The bearer is a secret: it goes only into that
header, never into argv, a log line or a message. Every request waits at most
``--source-timeout`` and a whole fetch at most ``REQUEST_BUDGET`` times that, retries included,
as for Google. ``requests`` is imported only when a fetch runs.
"""

from __future__ import annotations

import os
import time

from .. import TYPE_CHECKING, net
from ..errors import SourceError, UsageError
from ..logs import printable
from ..options import ACTIONS_TOKEN, ACTIONS_URL, BY_DEST
from . import ATTEMPTS, BACKOFF, REQUEST_BUDGET, RETRY_STATUSES

if TYPE_CHECKING:
    from collections.abc import Mapping

    import requests

    from ..config import Settings

# An answer is a few KB; more is not the token endpoint.
_MAX_ANSWER = 64 * 1024
_PERMISSION = (
    "give the job `permissions: id-token: write` (the runner sets ACTIONS_ID_TOKEN_REQUEST_URL "
    "and ACTIONS_ID_TOKEN_REQUEST_TOKEN only then)"
)


def _runner(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The runner's endpoint and bearer, or a usage error naming the missing permission."""
    env = os.environ if environ is None else environ
    url, bearer = env.get(ACTIONS_URL, ""), env.get(ACTIONS_TOKEN, "")
    if not url or not bearer:
        missing = " and ".join(name for name in (ACTIONS_URL, ACTIONS_TOKEN) if not env.get(name))
        raise UsageError(
            f"{BY_DEST['source'].flag} github-actions: {missing} "
            f"{'is' if ' and ' not in missing else 'are'} not set, so this job may not mint ID "
            "tokens",
            f"{_PERMISSION}; outside GitHub Actions choose another {BY_DEST['source'].where()}",
        )
    if not url.startswith("https://"):
        raise UsageError(
            f"{ACTIONS_URL} is not an https URL ({printable(net.endpoint(url))})",
            "the runner's bearer is never sent in clear; check what sets the variable",
        )
    return url, bearer


def _request_url(url: str, audience: str) -> str:
    """The runner's URL with the audience appended to the query it already has."""
    import urllib.parse

    separator = "&" if "?" in url else "?"
    return f"{url}{separator}audience={urllib.parse.quote(audience, safe='')}"


def describe(settings: Settings) -> str:
    url, _bearer = _runner()
    return (
        f"the GitHub Actions OIDC endpoint {net.endpoint(url)} ({ACTIONS_URL}, with the "
        f"runner's {ACTIONS_TOKEN}), audience {settings.audience}"
    )


def credential_name(claims: Mapping[str, object]) -> tuple[str, str]:
    """Name and description of the federated credential for a GitHub Actions subject."""
    subject = claims.get("sub")
    return f"github-{subject}", f"GitHub Actions {claims.get('repository') or ''} ({subject})"


def fetch(settings: Settings) -> str:
    """A fresh ID token for ``settings.audience`` from the runner."""
    url, bearer = _runner()
    target = _request_url(url, settings.audience)
    net.check_ca_bundle(target)
    import requests

    from ..dnsbound import bounded_session

    timeout = float(settings.source_timeout)
    deadline = time.monotonic() + REQUEST_BUDGET * timeout
    headers = {
        "Authorization": f"bearer {bearer}",
        "Accept": "application/json; api-version=2.0",
        "User-Agent": "azfed-helper",
    }
    with bounded_session(requests.Session()) as session:
        for attempt in range(1, ATTEMPTS + 1):
            limit = min(timeout, deadline - time.monotonic())
            if limit <= 0:
                raise _unreachable(
                    url,
                    f"not tried: the fetch already took {REQUEST_BUDGET} x {BY_DEST['source_timeout'].flag}",
                )
            try:
                status, body = _get(session, target, headers, limit)
            except requests.Timeout as exc:
                raise _unreachable(url, net.timeout_reason(exc, limit)) from exc
            except requests.RequestException as exc:
                problem = net.reason(exc)
                failure, final = (
                    _unreachable(url, problem),
                    problem == net.UNRESOLVED or net.is_tls_failure(exc),
                )
                failure.__cause__ = exc
            else:
                if status not in RETRY_STATUSES:
                    return _token(url, status, body, bearer)
                failure, final = _unreachable(url, f"HTTP {status}"), False
            delay = BACKOFF * 2 ** (attempt - 1)
            if final or attempt == ATTEMPTS or deadline - time.monotonic() <= delay:
                raise failure
            net.announce_retry(f"GitHub Actions: {failure.message}", delay, attempt + 1, ATTEMPTS)
            time.sleep(delay)
    raise AssertionError("not reached: the last attempt returns or raises")


def _get(
    session: requests.Session, url: str, headers: dict[str, str], limit: float
) -> tuple[int, bytes]:
    """One GET, no redirects followed (the bearer goes to the runner's endpoint only); the
    answer is read up to ``_MAX_ANSWER`` bytes."""
    with session.get(
        url, headers=headers, timeout=limit, allow_redirects=False, stream=True
    ) as response:
        body = response.raw.read(_MAX_ANSWER + 1, decode_content=True)
        return response.status_code, body


def _unreachable(url: str, reason: str) -> SourceError:
    return SourceError(
        f"cannot reach the GitHub Actions token endpoint {net.endpoint(url)}: {reason}",
        "check the runner's network access (proxy: HTTPS_PROXY/NO_PROXY); "
        f"{BY_DEST['source_timeout'].flag} bounds each wait",
    )


def _token(url: str, status: int, body: bytes, bearer: str) -> str:
    """The JWT in a 200 answer; any other answer as one error naming what to change."""
    import json

    if status == 200 and len(body) <= _MAX_ANSWER:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = None
        value = document.get("value") if isinstance(document, dict) else None
        if isinstance(value, str) and value.strip():
            return value.strip()
    said = _message(body).replace(bearer, "***")
    if status in (401, 403):
        raise SourceError(
            f"the GitHub Actions token endpoint refused to mint an ID token (HTTP {status}): {said}",
            f"{_PERMISSION}; a job's {ACTIONS_TOKEN} also stops working when the job ends",
        )
    raise SourceError(
        f"the GitHub Actions token endpoint {net.endpoint(url)} answered HTTP {status} "
        f"without a token: {said}",
        f"check {ACTIONS_URL}: the runner sets it to its ID token endpoint",
    )


def _message(body: bytes) -> str:
    """What the endpoint said, short and printable: its JSON ``message``, else its first line."""
    import json

    text = body[:_MAX_ANSWER].decode("utf-8", "replace")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        document = None
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        text = document["message"]
    lines = text.strip().splitlines()
    return printable(lines[0][:200]) if lines else "(empty answer)"
