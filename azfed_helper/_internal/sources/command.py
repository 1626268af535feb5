"""The ``command`` source: run a command that prints a JWT on stdout (alone, or in the JSON
that google-auth's executable-sourced credentials or kubectl's exec plugins read).

Like google-auth's executable-sourced credentials and AWS's ``credential_process``: the setting
is split as a shell would split it (``shlex``), but no shell runs unless the user writes
``sh -c '...'``. The command inherits our environment and working directory (a relative path
in it means what it meant where the user typed it, as with those tools), gets no stdin, and is
given ``--source-timeout`` in all: then it is killed, with every process it started (it runs
in a session of its own). At most ``MAX_OUTPUT`` bytes of stdout are kept. A failure shows the
last line of its stderr, escaped; stdout is never shown, as it may hold a token.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from .. import TYPE_CHECKING, net
from ..errors import SourceError, UsageError
from ..logs import printable
from ..options import BY_DEST
from ..tokenfile import MAX_BYTES as MAX_OUTPUT
from . import any_issuer_credential

if TYPE_CHECKING:
    from ..config import Settings

credential_name = any_issuer_credential
# google-auth's executable-sourced credentials: the token types that hold a JWT, and what the
# program is told (the audience its token is for, the type wanted, and that nobody is there).
_ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105 (a type's name)
_JWT = "urn:ietf:params:oauth:token-type:jwt"
_JWT_TYPES = (_ID_TOKEN, _JWT)
# stderr kept for the message: its tail.
_STDERR_TAIL = 4096
_CHUNK = 65536


def argv_of(settings: Settings) -> list[str]:
    """The command's argv, or a usage error."""
    import shlex

    settings.require("assertion_command")
    option = BY_DEST["assertion_command"]
    try:
        argv = shlex.split(str(settings.assertion_command))
    except ValueError as exc:
        raise UsageError(
            f"cannot split {option.flag} into arguments: {exc}",
            "quote it as in a shell (no shell runs it; write sh -c '...' for one)",
        ) from exc
    if not argv:
        raise UsageError(f"{option.flag} is empty", f"give {option.where()}")
    return argv


def describe(settings: Settings) -> str:
    import shutil

    argv = argv_of(settings)
    found = shutil.which(argv[0])
    if found is None:
        raise UsageError(
            f"the assertion command {printable(argv[0])} is not an executable file"
            + ("" if "/" in argv[0] else " on PATH"),
            f"check {BY_DEST['assertion_command'].where()}",
        )
    where = f" ({found})" if found != argv[0] else ""
    return (
        f"the command {printable(argv[0])}{where} with {len(argv) - 1} argument(s), "
        f"run for each token, at most {net.seconds(settings.source_timeout)}"
    )


def fetch(settings: Settings) -> str:
    """Run the command; its stdout, stripped (or the token in its JSON), is the token."""
    argv = argv_of(settings)
    name = printable(argv[0])
    try:
        child = subprocess.Popen(
            argv,
            env={
                **os.environ,
                "GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE": settings.audience,
                "GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE": _ID_TOKEN,
                "GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE": "0",
            },
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # killed with everything it started
        )
    except OSError as exc:
        raise UsageError(
            f"cannot run the assertion command {name}: {exc.strerror}",
            f"check {BY_DEST['assertion_command'].where()}: the program must exist and be "
            "executable (found on PATH unless the path has a '/')",
        ) from exc
    outcome = "interrupted"
    try:
        stdout, stderr, outcome = _collect(child, settings.source_timeout)
    finally:
        _end(child, outcome)
    if outcome == "overflow":
        raise SourceError(
            f"the assertion command {name} printed more than {MAX_OUTPUT} bytes",
            "it must print the JWT alone on stdout (logs belong on stderr)",
        )
    if outcome == "timeout":
        raise SourceError(
            f"the assertion command {name} did not finish within "
            f"{net.seconds(settings.source_timeout)} and was killed",
            f"raise {BY_DEST['source_timeout'].where()} if it needs longer, or check why it "
            "hangs (a process it left running with our stdout open counts as running)",
        )
    if child.returncode != 0:
        status = (
            f"was killed by signal {-child.returncode}"
            if child.returncode < 0
            else f"exited with status {child.returncode}"
        )
        raise SourceError(
            f"the assertion command {name} {status}: {_last_line(stderr)}",
            "run the command yourself to see its whole output",
        )
    text = stdout.decode("ascii", "replace").strip()
    if text.startswith("{"):
        text = _from_json(text, name)
    if text.count(".") != 2 or any(char.isspace() for char in text):
        raise SourceError(
            f"the assertion command {name} printed {len(stdout)} bytes that are not one JWT",
            "it must print the JWT alone on stdout (logs belong on stderr), or a JSON "
            "executable response or ExecCredential holding one",
        )
    return text


def _from_json(text: str, name: str) -> str:
    """The JWT in a JSON answer that tools already print: google-auth's executable-sourced
    credential response (version 1; ``success`` with ``id_token``, or a failure's ``code`` and
    ``message``) or a Kubernetes ``ExecCredential`` (``status.token``, as kubelogin's
    ``get-token`` prints an OIDC ID token). The JWT's own claims are checked afterwards, so an
    ``expiration_time`` is not needed."""
    import json

    try:
        answer = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SourceError(
            f"the assertion command {name} printed JSON that does not parse",
            "it must print the JWT alone, or a JSON executable response or ExecCredential",
        ) from exc
    if not isinstance(answer, dict):
        answer = {}
    if answer.get("kind") == "ExecCredential":
        status = answer.get("status")
        token = status.get("token") if isinstance(status, dict) else None
        if isinstance(token, str):
            return token
        raise SourceError(
            f"the ExecCredential printed by the assertion command {name} has no status.token",
            "it must hold the ID token in status.token",
        )
    if answer.get("version", 1) != 1:
        raise SourceError(
            f"the assertion command {name} printed an executable response of version "
            f"{printable(str(answer.get('version')))[:20]}; only version 1 is known",
            "have it print version 1, or the JWT alone",
        )
    if answer.get("success") is False:
        said = " ".join(
            printable(str(answer[key]))[:300] for key in ("code", "message") if answer.get(key)
        )
        raise SourceError(
            f"the assertion command {name} reported failure: {said or '(no code or message)'}",
            "run the command yourself to see why",
        )
    token = answer.get("id_token")
    kind = answer.get("token_type", _ID_TOKEN)
    if answer.get("success") is True and kind in _JWT_TYPES and isinstance(token, str):
        return token
    raise SourceError(
        f"the assertion command {name} printed JSON that holds no ID token",
        'an executable response needs "success": true and an "id_token" of token_type '
        f"{_ID_TOKEN} or {_JWT} (a SAML response is not one); an ExecCredential, status.token",
    )


def _collect(child: subprocess.Popen[bytes], timeout: float) -> tuple[bytes, bytes, str]:
    """Read stdout (capped) and stderr's tail until both close and the child exits, within
    ``timeout``. Returns ``(stdout, stderr, outcome)``: ``done``, ``timeout`` or ``overflow``."""
    import selectors

    assert child.stdout is not None
    assert child.stderr is not None
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ, out)
        selector.register(child.stderr, selectors.EVENT_READ, err)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return bytes(out), bytes(err), "timeout"
            for key, _events in selector.select(left):
                chunk = os.read(key.fd, _CHUNK)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffer: bytearray = key.data
                buffer += chunk
                if buffer is out and len(out) > MAX_OUTPUT:
                    return bytes(out), bytes(err), "overflow"
                if buffer is err and len(err) > _STDERR_TAIL:
                    del err[:-_STDERR_TAIL]
    try:
        child.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return bytes(out), bytes(err), "timeout"  # it closed its output but lives on
    return bytes(out), bytes(err), "done"


def _end(child: subprocess.Popen[bytes], outcome: str) -> None:
    """Unless the command finished, kill its session (the group it leads: what it left
    running, too); then reap it and close the pipes. While a member of the group lives, or
    the command is unreaped, the group's id names nothing else."""
    if outcome != "done":
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except OSError:
            pass  # nothing left in the group
    child.wait()
    for stream in (child.stdout, child.stderr):
        if stream is not None:
            stream.close()


def _last_line(stderr: bytes) -> str:
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return printable(lines[-1].strip()[:300]) if lines else "(nothing on stderr)"
