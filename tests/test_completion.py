"""Shell completion: the scripts `azfed-helper completion SHELL` prints, loaded in real bash, zsh
and fish, complete commands, options, fixed values and paths exactly as the parser takes them.

bash: the script is sourced in ``bash --norc`` and its registered function called with COMP_*
set, as readline would. zsh: an interactive ``zsh -f`` in a pseudo-terminal, with compinit, gets
the line and a real TAB; the matches the completion system adds are recorded by a wrapper around
``compadd`` (the builtin still adds them). fish: ``complete -C LINE`` prints the candidates.
"""

from __future__ import annotations

import os
import select
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from azfed_helper._internal import cli
from azfed_helper._internal.azcli.hooks import SHELLS as HOOK_SHELLS
from azfed_helper._internal.commands import COMMANDS
from azfed_helper._internal.options import BY_DEST, OPTIONS, for_command

from .conftest import REPO, cli_env, make_jwt, run_cli

SHELLS = ("bash", "zsh", "fish")
FILES = {"alpha.txt", "beta.json", "gamma"}  # gamma is a directory
DIRS = {"gamma"}
OUTPUT = BY_DEST["output"]
WAIT = 30.0  # seconds for a shell to answer: generous, and each wait ends when the answer arrives

Complete = Callable[[list[str]], list[set[str]]]


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each shell's script, printed by the real CLI."""
    directory = tmp_path_factory.mktemp("completion")
    paths = {}
    for shell in SHELLS:
        done = run_cli("completion", shell)
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        paths[shell] = directory / f"azfed-helper.{shell}"
        paths[shell].write_text(done.stdout)
    return paths


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The directory the shell completes in, holding known files."""
    work = tmp_path / "work"
    work.mkdir()
    for name in FILES - DIRS:
        (work / name).write_text("")
    for name in DIRS:
        (work / name).mkdir()
    return work


def _needs(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed (.ci/run installs it)")


def _shell_env(tmp_path: Path) -> dict[str, str]:
    """A small, predictable environment: a fresh HOME, no vi keymap from $VISUAL, and this
    checkout's ``azfed-helper`` on PATH, as an installed one would be."""
    home, bin_dir = tmp_path / "shell-home", tmp_path / "shell-bin"
    if not bin_dir.exists():
        home.mkdir()
        bin_dir.mkdir()
        shim = bin_dir / "azfed-helper"
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m azfed_helper "$@"\n')
        shim.chmod(0o755)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "HOME": str(home),
        "TERM": "dumb",
        "LC_ALL": "C",
    }


def _bash_words(line: str) -> list[str]:
    """COMP_WORDS as bash makes them: split at blanks, and at "=" (in COMP_WORDBREAKS)."""
    words: list[str] = []
    for word in line.split(" "):
        name, equals, value = word.partition("=")
        words += [name, "=", value] if equals else [word]
    return words


def bash_completer(load: str, cwd: Path, tmp_path: Path) -> Complete:
    """Completes lines in ``bash --norc`` after running ``load``, as readline would call it."""

    def complete(lines: list[str]) -> list[set[str]]:
        program = [load, "spec=$(complete -p azfed-helper)"]
        program.append("completer=${spec#*-F }; completer=${completer%% *}")
        for line in lines:
            words = _bash_words(line)
            quoted = " ".join(shlex.quote(word) for word in words)
            program += [
                f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}",
                f"COMP_LINE={shlex.quote(line)}; COMP_POINT={len(line)}",
                f'"$completer" azfed-helper {shlex.quote(words[-1])} {shlex.quote(words[-2])}',
                'printf "%s\\n" "${COMPREPLY[@]}" "<end>"',
            ]
        done = subprocess.run(
            ["bash", "--norc", "--noprofile", "-c", "\n".join(program)],
            cwd=cwd, env=_shell_env(tmp_path), capture_output=True, text=True, timeout=WAIT,
        )  # fmt: skip
        assert done.returncode == 0 and done.stderr == "", done.stderr
        return _split(done.stdout, len(lines))

    return complete


def fish_completer(load: str, cwd: Path, tmp_path: Path, autoload: bool = False) -> Complete:
    """Completes lines with ``complete -C`` after running ``load``; ``autoload``: with the
    configuration (and so the completion directories) of the test's HOME."""

    def complete(lines: list[str]) -> list[set[str]]:
        program = [load]
        for line in lines:
            program += [f"complete -C {_fish_quote(line)}", "echo '<end>'"]
        options = [] if autoload else ["--no-config"]
        done = subprocess.run(
            ["fish", *options, "-c", "\n".join(program)],
            cwd=cwd, env=_shell_env(tmp_path), capture_output=True, text=True, timeout=WAIT,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert autoload or done.stderr == "", done.stderr
        found = _split(done.stdout, len(lines))
        # fish prints "--output=json" for "--output=" and "gamma/" for a directory.
        return [
            {_value_only(line, cand.split("\t")[0]).rstrip("/") for cand in cands}
            for line, cands in zip(lines, found, strict=True)
        ]

    return complete


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _value_only(line: str, candidate: str) -> str:
    last = line.rsplit(" ", 1)[-1]
    return candidate.removeprefix(last.partition("=")[0] + "=") if "=" in last else candidate


def _split(output: str, count: int) -> list[set[str]]:
    parts = output.split("<end>\n")
    assert len(parts) == count + 1 and parts[-1] == "", output
    return [{line for line in part.splitlines() if line} for part in parts[:-1]]


# -- zsh in a pseudo-terminal -----------------------------------------------------------------

# Records every match the completion system adds, then lets the builtin add it as usual. Calls
# with -O/-A/-D only compute matches into an array (the functions use them to filter): passed on.
_ZSH_RECORDER = """\
compadd() {
    if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\\ * ]]; then
        builtin compadd "$@"
        return
    fi
    local -a recorded
    builtin compadd -A recorded "$@"
    (( $#recorded )) && print -rl -- $recorded >> $AZFED_COMPLETION_RECORD
    builtin compadd "$@"
}
"""


class ZshSession:
    """An interactive ``zsh -f`` on a pseudo-terminal, completing lines with a real TAB.

    Each line is typed, TAB pressed, the line killed (^U) and a marker command run; input is
    only sent once zle is reading (its zle-line-init hook prints a marker), since a terminal in
    between commands is in cooked mode, where ^U would erase the line before zsh sees the TAB.
    """

    def __init__(self, setup: str, cwd: Path, tmp_path: Path) -> None:
        self.record = tmp_path / "zsh-record"
        env = {**_shell_env(tmp_path), "AZFED_COMPLETION_RECORD": str(self.record)}
        self.master, slave = os.openpty()
        self.process = subprocess.Popen(
            ["zsh", "-f", "-i"], stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env,
            start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        self.pending = b""
        self.count = 0
        try:
            # Markers are computed ($((...)), '' joins) so that zle's echo of input never matches.
            self._send(
                "bindkey -e; unsetopt autolist automenu beep\n"
                f"{_ZSH_RECORDER}{setup}\n"
                "zle-line-init() { print -rn -- '<zle''-ready>' }; zle -N zle-line-init\n"
                "print -r -- '<set''up>'\n"
            )
            self._read_until(b"<setup>")
            self._read_until(b"<zle-ready>")
        except BaseException:
            self.close()
            raise

    def complete(self, lines: list[str]) -> list[set[str]]:
        return [self._complete(line) for line in lines]

    def _complete(self, line: str) -> set[str]:
        self.record.write_text("")
        self.count += 1
        self._send(f"{line}\t\x15print -r -- '<done'$(({self.count}))'>'\n")
        self._read_until(f"<done{self.count}>".encode())
        self._read_until(b"<zle-ready>")
        return set(self.record.read_text().splitlines())

    def _send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def _read_until(self, marker: bytes) -> None:
        deadline = time.monotonic() + WAIT
        while marker not in self.pending:
            left = deadline - time.monotonic()
            readable = select.select([self.master], [], [], max(left, 0))[0]
            if not readable:
                raise AssertionError(f"zsh did not print {marker!r}: {self.pending[-2000:]!r}")
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: zsh exited
                data = b""
            if not data:
                raise AssertionError(f"zsh exited before {marker!r}: {self.pending[-2000:]!r}")
            self.pending += data
        self.pending = self.pending.split(marker, 1)[1]

    def close(self) -> None:
        try:
            self._send("exit\n")
            self.process.wait(timeout=WAIT)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            os.close(self.master)


def _zsh_sourced(script: Path) -> str:
    return f"autoload -Uz compinit && compinit -u -D\nsource {shlex.quote(str(script))}"


def _zsh_in_fpath(script: Path, tmp_path: Path) -> str:
    """The other install: the script saved as _azfed-helper in $fpath, autoloaded by compinit."""
    functions = tmp_path / "zsh-functions"
    functions.mkdir()
    shutil.copy(script, functions / "_azfed-helper")
    return f"fpath=({shlex.quote(str(functions))} $fpath)\nautoload -Uz compinit && compinit -u -D"


@pytest.fixture(params=SHELLS)
def complete(
    request: pytest.FixtureRequest, scripts: dict[str, Path], workdir: Path, tmp_path: Path
) -> Iterator[Complete]:
    shell: str = request.param
    _needs(shell)
    if shell == "bash":
        yield bash_completer(f"source {shlex.quote(str(scripts[shell]))}", workdir, tmp_path)
    elif shell == "fish":
        yield fish_completer(f"source {_fish_quote(str(scripts[shell]))}", workdir, tmp_path)
    else:
        session = ZshSession(_zsh_sourced(scripts["zsh"]), workdir, tmp_path)
        try:
            yield session.complete
        finally:
            session.close()


# -- what each shell completes ------------------------------------------------------------------


def test_commands_options_and_fixed_values(complete: Complete) -> None:
    lines = {
        "azfed-helper wr": {"write"},
        "azfed-helper se": {"serve", "settings"},
        f"azfed-helper token {OUTPUT.flags[-1]} ": set(OUTPUT.choices or ()),
        f"azfed-helper token {OUTPUT.flag}=": set(OUTPUT.choices or ()),
        "azfed-helper token --output=js": {"json"},
        "azfed-helper write --tok": {"--token-file", "--token-format"},
        "azfed-helper az-login --print-hook ": set(HOOK_SHELLS),
        "azfed-helper env --for ": {"azure", "terraform", "managed-identity"},
        "azfed-helper env --format ": {"sh", "json"},
        "azfed-helper daemon --log-format ": {"human", "json"},
        "azfed-helper completion ": set(SHELLS),
        "azfed-helper --ver": {"--version"},
        "azfed-helper --de": {"--debug"},
    }
    assert complete(list(lines)) == list(lines.values())


def test_paths_complete_files_and_directories(complete: Complete) -> None:
    lines = {
        "azfed-helper write --token-file ": FILES,
        "azfed-helper write --token-file al": {"alpha.txt"},
        "azfed-helper write --token-file=al": {"alpha.txt"},
        "azfed-helper token --config ": FILES,
        "azfed-helper token --cache-dir ": DIRS,
        "azfed-helper demo --keep ": DIRS,
        "azfed-helper az -- ": FILES,  # az's own arguments
    }
    assert complete(list(lines)) == list(lines.values())


def test_only_the_commands_own_options_are_offered(complete: Complete) -> None:
    write, token, top = complete(["azfed-helper write -", "azfed-helper token -", "azfed-helper -"])
    assert "--token-file" in write and "--output" not in write and "--print-hook" not in write
    assert "--port" not in write and "--for" not in write and "--json" not in write
    assert "--output" in token and "--create-dirs" not in token
    assert top == {"-h", "--help", "--version", "--debug"}


def _parser_flags(command: str) -> set[str]:
    """The option strings the normal path's parser takes for ``command``, hidden ones aside."""
    import argparse

    parser = cli.build_parser([command])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        flag
        for action in sub.choices[command]._actions
        if action.help != argparse.SUPPRESS
        for flag in action.option_strings
    }


def test_completion_follows_the_registry_the_table_and_the_parser(complete: Complete) -> None:
    """Every command, every option of the table and every fixed value, for each command."""
    lines: dict[str, set[str]] = {"azfed-helper ": set(COMMANDS)}
    for command in COMMANDS:
        table = {flag for option in for_command(command) for flag in option.flags}
        flags = _parser_flags(command)
        assert table <= flags
        lines[f"azfed-helper {command} -"] = flags
        for option in for_command(command):
            if option.choices:
                lines[f"azfed-helper {command} {option.flag} "] = set(option.choices)
            elif option.is_path:
                dirs_only = option.metavar == "DIR"
                lines[f"azfed-helper {command} {option.flag} "] = DIRS if dirs_only else FILES
    assert dict(zip(lines, complete(list(lines)), strict=True)) == lines


def test_every_path_option_of_the_table_is_named_as_a_path() -> None:
    """The completion tells paths by metavar; the table's is_path options must use those."""
    for option in OPTIONS:
        if option.is_path:
            assert option.metavar in ("PATH", "FILE", "DIR"), option.name


def test_zsh_completes_from_fpath_too(
    scripts: dict[str, Path], workdir: Path, tmp_path: Path
) -> None:
    _needs("zsh")
    session = ZshSession(_zsh_in_fpath(scripts["zsh"], tmp_path), workdir, tmp_path)
    try:
        found = session.complete(["azfed-helper wr", "azfed-helper token -o "])
    finally:
        session.close()
    assert found == [{"write"}, set(OUTPUT.choices or ())]


def _example(shell: str) -> str:
    """The line of `azfed-helper completion --help` that installs completion for ``shell``."""
    [line] = [e for e in COMMANDS["completion"].examples if f"completion {shell}" in e]
    return line.split("  #")[0]


@pytest.mark.parametrize("shell", SHELLS)
def test_the_help_examples_install_completion(shell: str, workdir: Path, tmp_path: Path) -> None:
    """Each shell's example from `completion --help` (also in the README), run as a user would."""
    _needs(shell)
    lines = ["azfed-helper wr", "azfed-helper token -o "]
    example = _example(shell)
    if shell == "bash":
        found = bash_completer(example, workdir, tmp_path)(lines)
    elif shell == "zsh":
        session = ZshSession(
            f"autoload -Uz compinit && compinit -u -D\n{example}", workdir, tmp_path
        )
        try:
            found = session.complete(lines)
        finally:
            session.close()
    else:
        install = f"mkdir -p ~/.config/fish/completions; {example}"
        subprocess.run(
            ["fish", "--no-config", "-c", install],
            env=_shell_env(tmp_path), check=True, timeout=WAIT,
        )  # fmt: skip
        found = fish_completer("", workdir, tmp_path, autoload=True)(lines)
    assert found == [{"write"}, set(OUTPUT.choices or ())]


def test_bash_registers_the_function_and_offers_no_value_for_free_text(
    scripts: dict[str, Path], workdir: Path, tmp_path: Path
) -> None:
    _needs("bash")
    registered = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", f"source {scripts['bash']}; complete -p azfed-helper"],
        env=_shell_env(tmp_path), capture_output=True, text=True, timeout=WAIT,
    )  # fmt: skip
    assert registered.stdout.strip() == "complete -F _azfed_helper azfed-helper"
    complete = bash_completer(f"source {shlex.quote(str(scripts['bash']))}", workdir, tmp_path)
    assert complete(["azfed-helper token --tenant-id ", "azfed-helper write -- "]) == [set(), set()]


# -- cost -----------------------------------------------------------------------------------------


def _modules_after(args: list[str], tmp_path: Path) -> tuple[int, set[str], str]:
    code = (
        "import sys\n"
        "from azfed_helper._internal.cli import main\n"
        f"code = main({args!r})\n"
        "print('MODULES=' + ','.join(sorted(sys.modules)), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(), cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    listed = [line for line in done.stderr.splitlines() if line.startswith("MODULES=")]
    return done.returncode, set(listed[-1].removeprefix("MODULES=").split(",")), done.stderr


def test_other_commands_never_load_the_completion_module(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(make_jwt())
    token.chmod(0o600)
    generator = "azfed_helper._internal.completion"
    code, modules, stderr = _modules_after(["write", "--token-file", str(token)], tmp_path)
    assert code == 0, stderr
    assert "argparse" not in modules  # the no-op fast path indeed
    assert generator not in modules
    code, modules, stderr = _modules_after(["status", "--token-file", str(token)], tmp_path)
    assert code == 0, stderr
    assert "argparse" in modules  # the normal parser path
    assert generator not in modules
    assert "azfed_helper._internal.commands.completion" not in modules
