"""The daemon's main thread: signals, the health and identity endpoints, the --exec child.

The refresh loop runs in a worker thread (``loop.Sidecar``); this thread only handles events,
which arrive through a queue that is safe to fill from a signal handler. So SIGTERM is honoured
within a second even while a request to the token source hangs, and nothing ever polls.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess

from .. import TYPE_CHECKING, sighup
from ..errors import EXIT_OK
from ..logs import printable
from ..options import BY_DEST
from ..sources import child_fetch, expected_issuer, fetcher
from . import systemd
from .loop import Sidecar

if TYPE_CHECKING:
    import argparse
    from types import FrameType

    from ..config import Settings
    from ..identity.server import IdentityServer
    from ..idtoken import IdToken
    from .health import HealthServer
    from .schedule import Policy

log = logging.getLogger("azfed_helper.daemon")
_TOKEN_FILE_VARIABLE = str(BY_DEST["token_file"].env)

# Messages to the main thread besides signal numbers.
_TOKEN = -1  # a token new to this daemon: the first one (starts --exec), or one just written
_LOOP_ENDED = -2
_STOP = (signal.SIGTERM, signal.SIGINT)
# Passed on to the --exec child; SIGHUP is ours (refresh now) and would kill most children.
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def _exit_status(returncode: int) -> int:
    """A child's status as a shell reports it: killed by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


class Supervisor:
    """The main thread's side: signals, the health server, the --exec child, clean exit."""

    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        args: argparse.Namespace,
        command: list[str] | None,
    ) -> None:
        self.settings = settings
        self.args = args
        self.command = command
        # Google's fetch runs in a child process: google-auth never stays resident in a
        # long-lived daemon. The other sources are cheap to run here.
        self.sidecar = Sidecar(settings, policy, fetch=fetcher(settings))
        self.events: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.child: subprocess.Popen[bytes] | None = None
        self.status = EXIT_OK
        self._started = False  # the first token is in place
        self._hup_pending = False  # a SIGHUP came before that

    def _signalled(self, signum: int, frame: FrameType | None) -> None:
        self.events.put(signum)  # SimpleQueue.put is reentrant: safe in a signal handler

    def run(self) -> int:
        handled = {*_STOP, signal.SIGHUP}
        if self.command:
            handled |= {*_FORWARDED, signal.SIGCHLD}
        previous = {signum: signal.signal(signum, self._signalled) for signum in handled}
        if sighup.take():  # it came while the command line was read
            self.events.put(signal.SIGHUP)
        identity: IdentityServer | None = None
        server: HealthServer | None = None
        try:
            if self.args.az_login:
                from ..azcli.login import daemon_hook

                self.sidecar.hooks.append(daemon_hook(self.settings))
            self.sidecar.hooks.append(lambda token: self.events.put(_TOKEN))
            self.sidecar.hooks.append(_ReadyOnce())
            identity = self._start_identity_endpoint()
            server = self._start_health(identity)
            self.sidecar.start(done=lambda: self.events.put(_LOOP_ENDED))
            self._supervise(identity)
        finally:
            systemd.notify("STOPPING=1")
            self.sidecar.stop()
            child_fetch.stop_all()
            if server is not None:
                server.stop()
            if identity is not None:
                identity.stop()
            if self.args.remove_on_exit and self.sidecar.error is None:
                _remove(self.settings.require_token_file())  # a clean stop only
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if self.sidecar.error is not None:
            raise self.sidecar.error
        return self.status

    def _start_identity_endpoint(self) -> IdentityServer | None:
        """The managed-identity endpoint next to the loop; its assertion is our token file."""
        if not self.args.identity_endpoint:
            return None
        from ..identity.endpoint import start_endpoint

        self.settings.require_app()
        return start_endpoint(self.settings, self.args)

    def _start_health(self, identity: IdentityServer | None) -> HealthServer | None:
        if not self.settings.health_addr:
            return None
        from .health import Checks, HealthServer, parse_address

        checks = Checks(
            self.sidecar.state,
            self.sidecar.watched,
            self.settings.audience,
            # The file source's file is kept fresh by its writer: ready while it is valid.
            0 if self.sidecar.reads_file else self.settings.min_remaining,
            issuer=expected_issuer(self.settings),
            ours=not self.sidecar.reads_file,
            identity=identity,
        )
        server = HealthServer(parse_address(self.settings.health_addr), checks)
        server.start()
        return server

    def _supervise(self, identity: IdentityServer | None) -> None:
        """Dispatch events until it is time to exit (sets ``status`` for --exec)."""
        while True:
            event = self.events.get()
            if event == _LOOP_ENDED:
                return
            if event == signal.SIGHUP:
                self._hangup(identity)
            elif event == _TOKEN:
                if not self._token_arrived():
                    return
            elif event == signal.SIGCHLD:
                if self.child is not None and self.child.poll() is not None:
                    self._child_exited(self.child.returncode)
                    return
            elif self.child is not None and event in _FORWARDED:
                self.child.send_signal(event)
            elif event in _STOP:
                log.info("%s: stopping", signal.Signals(event).name, extra={"event": "stopping"})
                return

    def _hangup(self, identity: IdentityServer | None) -> None:
        """SIGHUP: refresh now, and re-read the endpoint's --secret-file.

        One before the first token is honoured right after it: the loop's first step keeps a
        file that is still fresh, and the request was for a new token.
        """
        if identity is not None and self.settings.secret_file:
            from ..identity.endpoint import reload_secret

            reload_secret(identity, self.settings.secret_file)
        if self._started:
            log.info("SIGHUP: refreshing now", extra={"event": "sighup"})
            self.sidecar.refresh_now()
        else:
            log.info("SIGHUP: refreshing once started", extra={"event": "sighup"})
            self._hup_pending = True

    def _token_arrived(self) -> bool:
        """A token new to this daemon; the first one starts --exec. False when that fails."""
        if not self._started:
            self._started = True
            if self._hup_pending:
                self.sidecar.refresh_now()
        if self.command and self.child is None:
            return self._start_child()
        return True

    def _start_child(self) -> bool:
        assert self.command is not None
        env = dict(os.environ)
        env[_TOKEN_FILE_VARIABLE] = os.path.abspath(self.sidecar.watched)
        try:
            self.child = subprocess.Popen(self.command, env=env)
        except OSError as exc:
            self.status = 127 if isinstance(exc, FileNotFoundError) else 126
            log.error(
                "cannot run %s: %s",
                self.command[0],
                exc.strerror,
                extra={"event": "exec_failed", "status": self.status},
            )
            return False
        log.info(
            "started %s (pid %d)",
            self.command[0],
            self.child.pid,
            extra={"event": "exec_started", "pid": self.child.pid},
        )
        return True

    def _child_exited(self, returncode: int) -> None:
        self.status = _exit_status(returncode)
        log.info(
            "%s exited with status %d",
            self.command[0] if self.command else "child",
            self.status,
            extra={"event": "exec_exited", "status": self.status},
        )


class _ReadyOnce:
    """Hook: tell systemd (Type=notify) we are ready once the first token is in the file."""

    def __init__(self) -> None:
        self.sent = False

    def __call__(self, token: IdToken) -> None:
        if not self.sent:
            self.sent = True
            # One line per field: a claim must not add fields of its own (MAINPID=...).
            sub = printable(token.claims.get("sub"))
            systemd.notify(f"READY=1\nSTATUS=token for sub {sub} in place")


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot remove %s: %s", path, exc.strerror, extra={"event": "remove_failed"})
