"""``azfed-helper daemon``: keep the token file fresh forever, as a sidecar or a service.

The refresh loop runs in a worker thread; the main thread only handles signals, which arrive
through a queue that is safe to fill from a signal handler. So SIGTERM is honoured within a
second even while a request to the token source hangs, and nothing ever polls.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import subprocess

from .. import TYPE_CHECKING, logs, options
from ..config import resolve
from ..errors import EXIT_OK, UsageError
from ..sidecar import schedule as refresh
from ..sidecar import systemd
from ..sidecar.loop import Sidecar
from ..sources import child_fetch
from .serve import add_endpoint_options

if TYPE_CHECKING:
    from types import FrameType

    from ..config import Settings
    from ..identity.server import IdentityServer
    from ..idtoken import IdToken
    from ..sidecar.health import HealthServer

log = logging.getLogger("azfed_helper.daemon")

# Messages to the main thread besides signal numbers.
_WRITTEN = -1  # a token was written (starts the --exec child after the first one)
_LOOP_ENDED = -2
_STOP = (signal.SIGTERM, signal.SIGINT)
# Passed on to the --exec child; SIGHUP is ours (refresh now) and would kill most children.
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def configure(parser: argparse.ArgumentParser) -> None:
    options.add_token_file(parser)
    options.add_source(parser)
    options.add_file_writing(parser)
    options.add_azure(parser)
    options.add_cache(parser)
    endpoint = parser.add_argument_group("managed-identity endpoint")
    endpoint.add_argument(
        "--identity-endpoint",
        action="store_true",
        help="also serve the managed-identity endpoint, as `azfed-helper serve` does",
    )
    add_endpoint_options(endpoint)
    group = parser.add_argument_group("daemon")
    group.add_argument(
        "--once",
        action="store_true",
        help="write once and exit, exactly like `write` (init containers)",
    )
    group.add_argument(
        "--min-remaining",
        metavar="DURATION",
        help="least lifetime that counts as ready on /readyz (env AZFED_MIN_REMAINING; default "
        "10m: the readers' reuse window); must be below --refresh-margin",
    )
    group.add_argument(
        "--max-backoff",
        metavar="DURATION",
        help="longest wait between retries when the source fails (env AZFED_MAX_BACKOFF; default 1m)",
    )
    group.add_argument(
        "--remove-on-exit", action="store_true", help="delete the token file on a clean stop"
    )
    group.add_argument(
        "--health-addr",
        metavar="HOST:PORT",
        help="serve /livez, /readyz and /metrics there (:PORT means 127.0.0.1; env "
        "AZFED_HEALTH_ADDR; default off)",
    )
    options.add_logging(group)
    # A flag plus a trailing positional: argparse keeps "--" and what follows for a positional
    # REMAINDER, while an optional's REMAINDER rejects "--" inside a subcommand.
    group.add_argument(
        "--exec",
        dest="exec_flag",
        action="store_true",
        help="after the first write run CMD (with AZURE_FEDERATED_TOKEN_FILE set), pass it "
        "signals and exit with its status; write it last: --exec -- CMD [ARGS...]",
    )
    group.add_argument(
        "--az-login",
        action="store_true",
        help="log the Azure CLI in with each new token (see `azfed-helper az-login`)",
    )
    parser.add_argument("exec_argv", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    settings = resolve(args)
    if args.once:
        _refuse_with_once(args)
        from .write import run as write_once

        return write_once(args)
    command = _exec_argv(args)
    policy = _policy(settings)
    settings.require_token_file()
    logs.setup(settings.log_format, args.verbose - args.quiet)
    return _Daemon(settings, policy, args, command).run()


def _refuse_with_once(args: argparse.Namespace) -> None:
    """--once is exactly `write`: options that only mean something to a running daemon clash."""
    clashing = [
        flag
        for flag, given in (
            ("--exec", args.exec_flag or bool(args.exec_argv)),
            ("--health-addr", args.health_addr),
            ("--identity-endpoint", args.identity_endpoint),
            ("--az-login", args.az_login),
            ("--remove-on-exit", args.remove_on_exit),
        )
        if given
    ]
    if clashing:
        raise UsageError(
            f"--once cannot be combined with {', '.join(clashing)}",
            "--once writes the file and exits (an init container); drop --once to run the daemon",
        )


def _exec_argv(args: argparse.Namespace) -> list[str] | None:
    command = args.exec_argv[1:] if args.exec_argv[:1] == ["--"] else args.exec_argv
    if not args.exec_flag:
        if command:
            raise UsageError(
                f"unexpected argument {command[0]!r}",
                "to run a command after the first write, end with --exec -- CMD [ARGS...]",
            )
        return None
    if not command:
        raise UsageError("--exec needs a command", "write it last: --exec -- CMD [ARGS...]")
    return list(command)


def _policy(settings: Settings) -> refresh.Policy:
    if settings.min_remaining >= settings.refresh_margin:
        raise UsageError(
            f"--min-remaining ({settings.min_remaining}s) must be below the refresh margin "
            f"({settings.refresh_margin}s)",
            "otherwise /readyz fails before every refresh; lower --min-remaining or raise "
            "--refresh-margin",
        )
    return refresh.Policy(settings.refresh_margin, max_backoff=settings.max_backoff)


def _exit_status(returncode: int) -> int:
    """A child's status as a shell reports it: killed by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


class _Daemon:
    """The main thread's side: signals, the health server, the --exec child, clean exit."""

    def __init__(
        self,
        settings: Settings,
        policy: refresh.Policy,
        args: argparse.Namespace,
        command: list[str] | None,
    ) -> None:
        self.settings = settings
        self.args = args
        self.command = command
        # Fetch in a child process: google-auth never stays resident in a long-lived daemon.
        self.sidecar = Sidecar(settings, policy, fetch=child_fetch.fetch)
        self.events: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.child: subprocess.Popen[bytes] | None = None
        self.status = EXIT_OK

    def _signalled(self, signum: int, frame: FrameType | None) -> None:
        self.events.put(signum)  # SimpleQueue.put is reentrant: safe in a signal handler

    def run(self) -> int:
        handled = {*_STOP, signal.SIGHUP}
        if self.command:
            handled |= {*_FORWARDED, signal.SIGCHLD}
            self.sidecar.hooks.append(lambda token: self.events.put(_WRITTEN))
        if self.args.az_login:
            from ..azcli.login import daemon_hook

            self.sidecar.hooks.insert(0, daemon_hook(self.settings))
        self.sidecar.hooks.append(_ReadyOnce())
        previous = {signum: signal.signal(signum, self._signalled) for signum in handled}
        identity = self._start_identity_endpoint()
        server = self._start_health(identity)
        try:
            self.sidecar.start(done=lambda: self.events.put(_LOOP_ENDED))
            self._supervise()
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
        from .serve import start_endpoint

        self.settings.require_app()
        return start_endpoint(self.settings, self.args)

    def _start_health(self, identity: IdentityServer | None) -> HealthServer | None:
        if not self.settings.health_addr:
            return None
        from ..sidecar.health import Checks, HealthServer, parse_address

        checks = Checks(
            self.sidecar.state,
            self.settings.require_token_file(),
            self.settings.audience,
            self.settings.min_remaining,
            identity=identity,
        )
        server = HealthServer(parse_address(self.settings.health_addr), checks)
        server.start()
        return server

    def _supervise(self) -> None:
        """Dispatch events until it is time to exit (sets ``status`` for --exec)."""
        while True:
            event = self.events.get()
            if event == _LOOP_ENDED:
                return
            if event == signal.SIGHUP:
                log.info("SIGHUP: refreshing now", extra={"event": "sighup"})
                self.sidecar.refresh_now()
            elif event == _WRITTEN:
                if self.child is None and not self._start_child():
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

    def _start_child(self) -> bool:
        assert self.command is not None
        env = dict(os.environ)
        env["AZURE_FEDERATED_TOKEN_FILE"] = os.path.abspath(self.settings.require_token_file())
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
            systemd.notify(f"READY=1\nSTATUS=token for sub {token.claims.get('sub')} in place")


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot remove %s: %s", path, exc.strerror, extra={"event": "remove_failed"})
