"""Bad input, as real hosts produce it: one clear error, the documented exit code, nothing changed.

Each case runs the real CLI in a child process against a small world (a token file holding a
valid token, a private token cache) and asserts: the exit code; exactly one line
``azfed-helper: error: ...`` naming the problem, then one ``  hint: ...`` line; no traceback and no
"internal error"; every file of the world byte-for-byte as it was, and no file left behind but a
lock file. Nothing here reaches a network: the sources point at a closed port.
"""

from __future__ import annotations

import json
import os
import pwd
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import make_jwt, refusing_port, run_cli

ROOT = os.geteuid() == 0
CLOSED = f"127.0.0.1:{refusing_port()}"  # a case that reached a source would fail differently


class World:
    """The files a case may damage, and what they held before it ran."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.token = root / "run" / "token"
        self.cache = root / "cache"
        self.token.parent.mkdir(mode=0o700, parents=True)
        self.cache.mkdir(mode=0o700)
        self.token.write_text(make_jwt())
        self.token.chmod(0o600)
        msal_cache = {"AccessToken": {}, "RefreshToken": {}, "IdToken": {}, "Account": {}}
        (self.cache / "msal_token_cache.json").write_text(json.dumps(msal_cache))
        (self.cache / "msal_token_cache.json").chmod(0o600)
        self.env = {
            "AZFED_CACHE_DIR": str(self.cache),
            "AZURE_CLIENT_ID": "11111111-1111-1111-1111-111111111111",
            "AZURE_TENANT_ID": "22222222-2222-2222-2222-222222222222",
            "GCE_METADATA_HOST": CLOSED,
            "GCE_METADATA_IP": CLOSED,
            "AZURE_AUTHORITY_HOST": f"https://{CLOSED}",
        }

    def snapshot(self) -> dict[str, bytes | None]:
        files: dict[str, bytes | None] = {}
        for path in sorted(self.root.rglob("*")):
            if path.is_symlink() or path.is_dir():
                continue
            try:
                files[str(path.relative_to(self.root))] = (
                    path.read_bytes() if path.is_file() else None
                )
            except OSError:
                files[str(path.relative_to(self.root))] = None
        return files


Setup = Callable[[World], None]


def nothing(world: World) -> None:
    return None


def write_config(content: bytes) -> Setup:
    def setup(world: World) -> None:
        (world.root / "config.toml").write_bytes(content)

    return setup


def write_credentials(content: bytes) -> Setup:
    def setup(world: World) -> None:
        (world.root / "key.json").write_bytes(content)

    return setup


def fifo(name: str) -> Setup:
    def setup(world: World) -> None:
        os.mkfifo(world.root / name, 0o600)

    return setup


def cache_mode(mode: int) -> Setup:
    return lambda world: world.cache.chmod(mode)


def cache_file_mode(mode: int) -> Setup:
    return lambda world: (world.cache / "msal_token_cache.json").chmod(mode)


def lock_link(world: World) -> None:
    (world.token.parent / ".token.lock").symlink_to(world.root / "victim")
    (world.root / "victim").write_text("precious")


def token_dir_of_nobody(world: World) -> None:
    os.chown(world.token.parent, pwd.getpwnam("nobody").pw_uid, -1)
    world.token.parent.chmod(0o755)


def cache_dir_of_nobody(world: World) -> None:
    os.chown(world.cache, pwd.getpwnam("nobody").pw_uid, -1)


LONG_NAME = "t" * 250
TOKEN = ("--token-file", "{token}")
FILE_SOURCE = ("--source", "file", "--assertion-file", "{token}")


def command(line: str) -> tuple[str, ...]:
    return ("--source", "command", "--assertion-command", line)


STALE = ("--force",)  # the world's token is fresh: the command must act even so
RESOURCE = ("--resource", "https://management.azure.com")


class Case:
    def __init__(
        self,
        name: str,
        args: tuple[str, ...],
        code: int,
        message: str,
        setup: Setup = nothing,
        env: dict[str, str] | None = None,
        root_only: bool = False,
        emulated: bool = False,
    ) -> None:
        self.name, self.args, self.code, self.message = name, args, code, message
        self.setup, self.env, self.root_only = setup, env or {}, root_only
        self.emulated = emulated  # inside the emulator's GitHub Actions job


CASES = [
    # --mode that lets others write a credential (issue 10 §2)
    Case("mode 0660", ("write", *TOKEN, "--mode", "0660"), 2, "lets group or others write"),
    Case("mode 0666", ("write", *TOKEN, "--mode", "0666"), 2, "lets group or others write"),
    Case("mode 0602 by variable", ("write", *TOKEN), 2, "lets group or others write",
         env={"AZFED_MODE": "0602"}),
    # --group past the platform limit: OverflowError in fchown left a temp file (issue 11 §2)
    Case("gid past 2**32", ("write", *TOKEN, *STALE, "--group", "99999999999"), 2,
         "group id 99999999999 is out of range"),
    Case("gid -1 in disguise", ("write", *TOKEN, *STALE, "--group", "4294967295"), 2,
         "out of range"),
    Case("superscript digit group", ("write", *TOKEN, *STALE, "--group", "²"), 2,
         "unknown group '²'"),
    # config files that are not TOML text (issue 11 §2)
    Case("binary config file", ("write", *TOKEN, "--config", "{root}/config.toml"), 2,
         "is not UTF-8 text", setup=write_config(b"\xff\xfe\x00\x01binary")),
    Case("NUL in config file", ("write", *TOKEN, "--config", "{root}/config.toml"), 2,
         "is not valid TOML", setup=write_config(b'mode = "0600\x00"')),
    Case("config nested deeply", ("write", *TOKEN, "--config", "{root}/config.toml"), 2,
         "is nested too deeply", setup=write_config(b"mode = " + b"[" * 5000 + b"]" * 5000)),
    Case("config file is a directory", ("write", *TOKEN, "--config", "{root}/run"), 2,
         "is not a regular file"),
    Case("config file is a FIFO", ("write", *TOKEN, "--config", "{root}/config.toml"), 2,
         "is not a regular file", setup=fifo("config.toml")),
    # credentials files (issue 11 §2)
    Case("credentials nested deeply", ("write", *TOKEN, *STALE, "--credentials", "{root}/key.json"),
         2, "is not valid JSON (nested too deeply)", setup=write_credentials(b"[" * 100000)),
    Case("binary credentials", ("write", *TOKEN, *STALE, "--credentials", "{root}/key.json"), 2,
         "cannot read credentials file", setup=write_credentials(b"\xff\xfe\xfa")),
    # token file paths that are not files (issue 11 §2)
    Case("token file is a directory", ("write", "--token-file", "{root}/run"), 2,
         "is a directory"),
    Case("token file is a device", ("write", "--token-file", "/dev/null"), 2,
         "is a character device; refusing to replace it"),
    Case("token file name too long for its lock", ("write", "--token-file", "{root}/" + LONG_NAME),
         2, ".lock: File name too long"),
    Case("lock file is a link", ("write", *TOKEN, *STALE), 2,
         ".token.lock: it is a symbolic link", setup=lock_link),
    Case("token directory of another user", ("write", *TOKEN, *STALE), 2,
         "belongs to another user", setup=token_dir_of_nobody, root_only=True),
    # the token cache (issue 10 §2)
    Case("cache directory others may write", ("token", *RESOURCE), 2,
         "cache directory {cache} is not private", setup=cache_mode(0o777)),
    Case("cache directory group may write", ("token", *RESOURCE, "-o", "json"), 2,
         "cache directory {cache} is not private", setup=cache_mode(0o770)),
    Case("cache file others may write", ("token", *RESOURCE), 2,
         "cache file {cache}/msal_token_cache.json is not private",
         setup=cache_file_mode(0o646)),
    Case("cache directory of another user", ("token", *RESOURCE), 2,
         "cache directory {cache} is not private", setup=cache_dir_of_nobody, root_only=True),
    # KUBERNETES_EXEC_INFO that is not JSON: SystemError on Python 3.10/3.11 (issue 11 §1)
    Case("truncated KUBERNETES_EXEC_INFO", ("token", "-o", "exec-credential"), 2,
         "KUBERNETES_EXEC_INFO is not a JSON object", env={"KUBERNETES_EXEC_INFO": '{"apiVer'}),
    Case("unterminated string in KUBERNETES_EXEC_INFO", ("token", "-o", "exec-credential"), 2,
         "KUBERNETES_EXEC_INFO is not a JSON object", env={"KUBERNETES_EXEC_INFO": '"abc'}),
    # numbers and choices, from a flag, a variable or a config file (issue 11 §2): each error
    # names where the value came from
    Case("zero timeout", ("write", *TOKEN, "--source-timeout", "0"), 2,
         "invalid --source-timeout '0': must be between 1s and 1 day"),
    Case("timeout over a day", ("write", *TOKEN, "--source-timeout", "2d"), 2,
         "must be between 1s and 1 day"),
    Case("negative timeout by variable", ("token", *RESOURCE), 2,
         "invalid AZFED_ENTRA_TIMEOUT '-5'", env={"AZFED_ENTRA_TIMEOUT": "-5"}),
    Case("superscript digit duration", ("write", *TOKEN, "--refresh-margin", "²"), 2,
         "invalid --refresh-margin '²': not a duration"),
    Case("duration of thirty digits", ("write", *TOKEN, "--refresh-margin", "9" * 30), 2,
         "invalid --refresh-margin"),
    Case("duration in the config file", ("write", *TOKEN, "--config", "{root}/config.toml"), 2,
         "invalid refresh-margin (config file {root}/config.toml)",
         setup=write_config(b'refresh-margin = "soon"\n')),
    Case("port out of range", ("serve", "--port", "70000"), 2, "invalid --port '70000'"),
    Case("port by variable not a number", ("serve",), 2, "invalid AZFED_PORT 'http'",
         env={"AZFED_PORT": "http"}),
    Case("health address without a port", ("daemon", *TOKEN, "--health-addr", "localhost"), 2,
         "invalid --health-addr 'localhost'"),
    Case("output by variable", ("token", *RESOURCE), 2, "invalid AZFED_OUTPUT 'xml'",
         env={"AZFED_OUTPUT": "xml"}),
    Case("boolean by variable", ("write", *TOKEN), 2, "invalid AZFED_CREATE_DIRS 'maybe'",
         env={"AZFED_CREATE_DIRS": "maybe"}),
    Case("readiness above the refresh margin", ("daemon", *TOKEN, "--min-remaining", "30m"), 2,
         "must be below the refresh margin"),
    Case("both scope and resource", ("token", *RESOURCE, "--scope", "api://x/.default"), 2,
         "both --scope and --resource given"),
    Case("app settings missing", ("token", *RESOURCE), 2,
         "AZURE_TENANT_ID is not set; AZURE_CLIENT_ID is not set",
         env={"AZURE_CLIENT_ID": "", "AZURE_TENANT_ID": ""}),
    # the sources other than Google (issue 15)
    Case("write with the file source", ("write", *TOKEN, *FILE_SOURCE), 2,
         "{token} already is a token file that another process keeps fresh"),
    Case("daemon with the file source", ("daemon", *TOKEN, *FILE_SOURCE), 2,
         "already is a token file"),
    Case("issuer not https", ("write", *TOKEN, "--issuer", "http://issuer.example"), 2,
         "invalid --issuer 'http://issuer.example': not an https URL"),
    Case("github variables missing", ("write", *TOKEN, *STALE, "--source", "github-actions"), 2,
         "ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set"),
    Case("github endpoint over http", ("write", *TOKEN, *STALE), 2,
         "ACTIONS_ID_TOKEN_REQUEST_URL is not an https URL",
         env={"ACTIONS_ID_TOKEN_REQUEST_URL": f"http://{CLOSED}/idtoken?api-version=2.0",
              "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "bearer"}),
    Case("github endpoint refuses (403)", ("write", *TOKEN, *STALE), 1,
         "the GitHub Actions token endpoint refused to mint an ID token (HTTP 403)",
         emulated=True, env={"ACTIONS_ID_TOKEN_REQUEST_TOKEN": "not-the-runner-token"}),
    Case("command fails", ("write", *TOKEN, *STALE, *command(
            "sh -c 'echo first >&2; printf \"no \\033[31mluck\\n\" >&2; exit 3'")), 1,
         "the assertion command sh exited with status 3: no \\x1b[31mluck"),
    Case("command hangs", ("write", *TOKEN, *STALE, "--source-timeout", "1", *command("sleep 30")),
         1, "the assertion command sleep did not finish within 1s and was killed"),
    Case("command prints garbage", ("write", *TOKEN, *STALE, *command("echo not-a-token")), 1,
         "the assertion command echo printed 12 bytes that are not one JWT"),
    Case("command not found", ("write", *TOKEN, *STALE, *command("{root}/no-such-command")), 2,
         "cannot run the assertion command {root}/no-such-command: No such file or directory"),
]  # fmt: skip


def fill(text: str, world: World) -> str:
    return text.format(token=world.token, cache=world.cache, root=world.root)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_one_clear_error_and_changes_nothing(
    case: Case, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if case.root_only and not ROOT:
        pytest.skip("needs root to play a second user")
    world = World(tmp_path / "world")
    case.setup(world)
    if case.emulated:
        emulator = request.getfixturevalue("emulator")
        world.env.update(emulator.github_actions_env())
        world.env["REQUESTS_CA_BUNDLE"] = emulator.ca_file
    before = world.snapshot()
    started = time.monotonic()
    done = run_cli(
        *(fill(arg, world) for arg in case.args), env={**world.env, **case.env}, timeout=60
    )
    assert time.monotonic() - started < 30  # never a hang (a FIFO, a lock)
    assert done.returncode == case.code, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("azfed-helper: error: ")
    assert fill(case.message, world) in lines[0]
    assert lines[1].startswith("  hint: ") and len(lines[1]) > len("  hint: ") + 10
    assert done.stdout == ""
    after = world.snapshot()
    new = sorted(set(after) - set(before))
    assert all(name.endswith(".lock") for name in new), new
    assert {name: after[name] for name in before} == before
