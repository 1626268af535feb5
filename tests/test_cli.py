"""The command line teaches itself: suggestions, help that leads, versions, one error for all
missing settings, the settings in effect, and the option table as the only declaration."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal import cli
from azfed_helper._internal.commands import COMMANDS
from azfed_helper._internal.options import BY_DEST, SETTINGS, for_command

from .conftest import REPO, cli_env, make_jwt, run_cli
from .netservers import SilentServer

PACKAGE = REPO / "azfed_helper"


def _usage_of(stderr: str) -> str:
    """ "usage: azfed-helper write ..." -> write; the top-level usage -> COMMAND."""
    word = stderr.split("usage: ", 1)[1].split()[1]
    return "COMMAND" if word.startswith("[") else word


@pytest.mark.parametrize(
    ("argv", "message", "usage_of"),
    [
        (["wirte"], "unknown command 'wirte'; did you mean write?", "write"),
        (
            ["write", "--token-flie", "x"],
            "unknown option --token-flie; did you mean --token-file?",
            "write",
        ),
        (["token", "-o", "jsn"], "invalid choice 'jsn'; did you mean json?", "token"),
        (["status", "--min-remainig", "1m"], "did you mean --min-remaining?", "status"),
        (["az-login", "--print-hook", "bsh"], "did you mean bash?", "az-login"),
        # before the command: a typo of ours, a command's option in the wrong place
        (["--verison"], "unknown option --verison; did you mean --version?", "COMMAND"),
        (["--token-file", "x", "write"], "--token-file is an option of the commands", "COMMAND"),
        (["-q", "write"], "-q goes after the command (azfed-helper write -q ...)", "write"),
    ],
)
def test_a_typo_names_the_closest_valid_choice_and_that_commands_usage(
    argv: list[str], message: str, usage_of: str
) -> None:
    done = run_cli(*argv)
    assert done.returncode == 2
    first = done.stderr.splitlines()[0]
    assert first.startswith("azfed-helper: error: ") and message in first
    assert _usage_of(done.stderr) == usage_of
    assert "Traceback" not in done.stderr


def test_long_options_are_never_taken_by_prefix(tmp_path: Path) -> None:
    token = tmp_path / "token"
    for argv in (["write", "--token-f", str(token)], ["settings", "--refresh", "5m"]):
        done = run_cli(*argv)
        assert done.returncode == 2, done.stderr
        assert "unknown option" in done.stderr
    assert not token.exists()
    parser = cli.build_parser(["write"])
    assert parser.allow_abbrev is False
    with pytest.raises(SystemExit):
        parser.parse_args(["write", "--token-f", "x"])


def test_debug_keeps_the_documented_exit_codes() -> None:
    usage = run_cli("--debug", "env")
    assert usage.returncode == 2
    assert "Traceback" in usage.stderr
    assert "azfed-helper: error: " in usage.stderr
    unknown = run_cli("write", "--nope", "--debug")
    assert unknown.returncode == 2


def test_version_is_one_line_with_what_matters() -> None:
    done = run_cli("--version")
    assert done.returncode == 0
    [line] = done.stdout.splitlines()
    assert re.fullmatch(
        r"azfed-helper \S+ from /\S+ \(Python 3\.\d+\.\d+, google-auth \S+, msal \S+\)", line
    ), line
    assert str(PACKAGE) in line


def test_top_level_help_leads_to_the_right_mode_and_states_the_exit_codes() -> None:
    text = run_cli("--help").stdout
    for mode in ("Azure SDK", "Terraform", "az", "bearer token", "Python code", "managed identity"):
        assert mode in text
    assert "130" in text and "exit codes" in text
    for name in COMMANDS:
        assert name in text


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_help_names_its_variables_and_ends_with_examples(command: str) -> None:
    text = run_cli(command, "--help").stdout
    assert text.rstrip().splitlines()[-1].strip().startswith(("azfed-helper", "eval", "GOOGLE_"))
    assert "examples:" in text
    for option in for_command(command):
        if option.env:
            assert option.env in text, (command, option.env)
    for name, _meaning in COMMANDS[command].environment:
        assert name in text


def test_all_missing_settings_are_named_in_one_error() -> None:
    done = run_cli("env")
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and lines[1].startswith("  hint: ")
    for name in ("client_id", "tenant_id", "token_file"):
        option = BY_DEST[name]
        assert f"{option.env} is not set" in lines[0]
        assert option.flag in lines[1]


def test_settings_shows_values_and_origins_without_network_or_writes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = tmp_path / "config.toml"
    config.write_text(
        'refresh-margin = "15m"\n[profiles.payments]\nclient-id = "from-profile"\nmode = "0640"\n'
    )
    env = {
        "HOME": str(home),
        "AZURE_TENANT_ID": "from-env",
        "GCE_METADATA_HOST": "127.0.0.1:9",  # nothing listens: any request would fail
    }
    done = run_cli(
        "settings", "--json", "--config", str(config), "--profile", "payments",
        "--audience", "api://x", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["config_file"] == str(config)
    assert shown["profile"] == "payments"
    settings = shown["settings"]
    assert settings["audience"] == {"value": "api://x", "origin": "flag"}
    assert settings["tenant-id"] == {"value": "from-env", "origin": "env AZURE_TENANT_ID"}
    assert settings["client-id"] == {
        "value": "from-profile",
        "origin": f"config {config} profile payments",
    }
    assert settings["refresh-margin"] == {"value": 900, "origin": f"config {config}"}
    assert settings["mode"] == {"value": "0640", "origin": f"config {config} profile payments"}
    assert settings["entra-timeout"] == {"value": 10, "origin": "default"}
    assert settings["cache-dir"]["value"] == str(home / ".cache" / "azfed-helper")
    assert set(settings) == {option.name for option in SETTINGS}
    assert not (home / ".cache").exists()  # nothing written, not even the cache directory
    human = run_cli("settings", "--config", str(config), env=env).stdout
    assert re.search(r"^refresh-margin +15m +\(config ", human, re.M)
    assert f"config file: {config}" in human


def _readme_settings_table() -> dict[str, tuple[str, str]]:
    """flag -> (environment cell, default cell) of README's configuration table."""
    text = (REPO / "README.md").read_text()
    table = text.split("| flag | environment | default | meaning |", 1)[1].split("\n\n", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in table.strip().splitlines()[1:]:
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        rows[cells[0].strip("`").split()[0]] = (cells[1].strip("`"), cells[2])
    return rows


def test_readme_configuration_table_is_the_option_table() -> None:
    rows = _readme_settings_table()
    documented = [*SETTINGS, BY_DEST["config"], BY_DEST["profile"]]
    assert set(rows) == {option.flag for option in documented}
    for option in documented:
        environment, default = rows[option.flag]
        assert environment == (option.env or "—"), option.name
        assert default.strip("`") == (option.shown_default() or "—"), option.name


def test_a_reader_that_leaves_costs_nothing_on_the_fast_path(emulator: Any, tmp_path: Path) -> None:
    """``azfed-helper token | head -c1``: the cache hit's print meets a closed pipe."""
    env = {**emulator.env(), "AZFED_CACHE_DIR": str(tmp_path / "cache")}
    args = ("token", "--resource", "https://management.azure.com")
    assert run_cli(*args, env=env).returncode == 0  # fills the cache
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before we print
    try:
        done = subprocess.run(
            [sys.executable, "-m", "azfed_helper", *args],
            env=cli_env(env),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""  # no traceback, no "Exception ignored" at exit
    assert done.returncode == 1
    assert emulator.counts["entra.token"] == 1  # a cache hit, not a second exchange


def test_ctrl_c_while_waiting_for_a_source_exits_130(tmp_path: Path) -> None:
    with SilentServer() as silent:
        child = subprocess.Popen(
            [sys.executable, "-m", "azfed_helper", "write", "--token-file", str(tmp_path / "t")],
            env=cli_env({"GCE_METADATA_HOST": silent.address, "GCE_METADATA_IP": silent.address}),
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while silent.accepted == 0:  # an event: the request is on the wire, the CLI waits
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.02)
        child.send_signal(signal.SIGINT)
        _out, err = child.communicate(timeout=60)
    assert child.returncode == 130
    assert "Traceback" not in err


def test_ctrl_c_on_the_fast_path_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    from azfed_helper._internal import fastpath

    def interrupted(argv: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fastpath, "try_fast_path", interrupted)
    assert cli.main(["write", "--token-file", "t"]) == 130


def test_an_unexpected_error_on_the_fast_path_falls_back_to_the_normal_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug in the fast path costs its speed, never the command: the normal path answers."""
    from azfed_helper._internal import fastpath

    tried: list[object] = []

    def broken(argv: object) -> None:
        tried.append(argv)
        raise RuntimeError("a bug in the fast path")

    monkeypatch.setattr(fastpath, "_answer", broken)
    token = tmp_path / "token"
    token.write_text(make_jwt())
    token.chmod(0o600)
    assert cli.main(["write", "--token-file", str(token)]) == 0
    assert tried, "the fast path was not tried"
    err = capsys.readouterr().err
    assert "fast path" not in err and "Traceback" not in err and "internal error" not in err


def test_no_placeholder_is_left_in_any_help() -> None:
    """Summaries and examples name options as ``{dest}``; what users read has the flags."""
    placeholder = re.compile(r"\{[a-z_]+\}")
    for name, command in COMMANDS.items():
        assert not placeholder.search(command.summary), name
        assert not placeholder.search(command.epilog()), name
    top = run_cli("--help")
    assert not placeholder.search(top.stdout), top.stdout
    assert "from Google unless --source" in " ".join(top.stdout.split())


# Variables the code reads that are not ours to document per command: the process's own
# (HOME, PYTHONPATH), and ones we only write or pass on (NO_PROXY in the env file we write).
NOT_A_SETTING = {"HOME", "PYTHONPATH", "NO_PROXY", "TERM"}


def test_every_variable_the_code_reads_is_named_in_some_help() -> None:
    """A variable read by name anywhere in the program is in a command's help: an option's
    variable, or the command's "other environment variables"."""
    read = set()
    for path in PACKAGE.rglob("*.py"):
        if "emulator" not in path.parts:
            text = path.read_text()
            read |= set(re.findall(r"environ(?:\.get)?[(\[]\"([A-Z][A-Z0-9_]+)\"", text))
            read |= set(re.findall(r"getenv\(\"([A-Z][A-Z0-9_]+)\"", text))
    named = {option.env for option in SETTINGS if option.env}
    named |= {name for command in COMMANDS.values() for name, _ in command.environment}
    assert "NO_COLOR" in read and "KUBERNETES_EXEC_INFO" in read  # the scan finds them
    assert read - NOT_A_SETTING - named == set()
