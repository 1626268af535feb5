"""argparse, fed from the option table, with errors that name the closest valid choice.

Loaded only on the full path (the fast path never builds a parser). Prefix matching of long options
is off everywhere (``allow_abbrev=False``): otherwise ``--source github`` would silently mean
``--source-timeout`` once both exist, and every option added later could break an abbreviation.
"""

from __future__ import annotations

import argparse
import importlib

from . import TYPE_CHECKING
from .options import for_command
from .paths import APP_NAME

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from .commands import Command


DESCRIPTION = """\
Reach Azure from Google Cloud with no Azure secret. The ID token comes from Google by
default, or from a Kubernetes projected token, a GitHub Actions job or a command: the source
setting (`azfed-helper settings` shows it; `azfed-helper write --help` lists the options).

which mode?
  you have                                   use
  an app using an Azure SDK                  the token file: `write` on a timer, or `daemon`;
                                             `env` prints the four variables the SDKs read
  Terraform (azurerm/azuread)                the token file: `env --for terraform`
  shell scripts calling az                   the az hook: `az-login --print-hook bash`
  scripts needing a bearer token, kubectl    `token` (-o raw|json|exec-credential|env)
  your own Python code                       FederatedCredential (azfed-helper[azure])
  tools that only speak managed identity     `serve`, a local managed-identity endpoint

first steps: `azfed-helper demo` (offline), `azfed-helper settings`, `azfed-helper doctor`"""

EPILOG = """\
exit codes: 0 success; 1 runtime failure; 2 usage or configuration error; 130 interrupted
(Ctrl-C). `az --` and `daemon --exec` exit with their command's status.
`azfed-helper COMMAND --help` shows a command's options, the variables it reads and examples."""


def version_line() -> str:
    """One line, as ``pip --version`` gives: versions that matter and where we are installed."""
    import os
    import platform
    from importlib import metadata

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "missing"

    from .._version import __version__

    where = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return (
        f"{APP_NAME} {__version__} from {where} (Python {platform.python_version()}, "
        f"google-auth {installed('google-auth')}, msal {installed('msal')})"
    )


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate a typo most likely meant, if any is close enough."""
    import difflib

    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def _unknown_command(message: str) -> str:
    """The word of an "invalid choice" error about the command, else ""."""
    if not message.startswith("argument COMMAND: invalid choice: "):
        return ""
    rest = message.removeprefix("argument COMMAND: invalid choice: ")
    return rest.split("'")[1] if rest.count("'") >= 2 else ""


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    match = closest(word, candidates)
    return f"; did you mean {match}?" if match else ""


class VersionAction(argparse.Action):
    """``--version``: the line is computed only when asked for (it reads package metadata)."""

    def __init__(self, option_strings: list[str], dest: str, line: Callable[[], str]) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show versions and exit")
        self.line = line

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(self.line())
        parser.exit()


class Parser(argparse.ArgumentParser):
    """Errors are one line, with a suggestion for a typo, then the usage of the command at hand."""

    _given: Sequence[str] = ()  # the arguments parsed, for what came before the command

    def error(self, message: str) -> None:  # type: ignore[override]
        text = self._suggest(message)
        usage = self._usage_for(closest(_unknown_command(message), self._commands()))
        self.exit(2, f"{self.prog.split()[0]}: error: {text}\n{usage}")

    def _commands(self) -> dict[str, argparse.ArgumentParser]:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    def _usage_for(self, command: str | None) -> str:
        """The usage of the command a typo most likely meant, with its options; else our own."""
        sub = self._commands().get(command or "")
        if not isinstance(sub, Parser):
            return self.format_usage()
        from .commands import COMMANDS

        if len(sub._actions) == 1:  # only -h so far: options are added for the chosen command
            add_options(sub, COMMANDS[sub.prog.split()[-1]])
        return sub.format_usage()

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if args is not None:
            self._given = list(args)
        known, extras = super().parse_known_args(args, namespace)
        sub = getattr(known, "_parser", None)
        if extras and sub is not None and sub is not self:
            sub.error(f"unrecognized arguments: {' '.join(extras)}")  # the command's own usage
        return known, extras

    def _option_strings(self) -> list[str]:
        return [flag for action in self._actions for flag in action.option_strings]

    def _stray_option(self) -> str | None:
        """The first option before the command that is not one of ours (top-level)."""
        for arg in self._given:
            if not arg.startswith("-"):
                return None
            flag = arg.split("=", 1)[0]
            if flag not in self._option_strings():
                return flag
        return None

    def _before_the_command(self, stray: str) -> str:
        """What to say of an option given before the command: a command's option in the wrong
        place, or a typo of ours (``--verison``)."""
        from .options import OPTIONS

        if any(stray in option.flags for option in OPTIONS):
            where = f"{self.prog} COMMAND {stray} ..."
            return f"{stray} is an option of the commands: give it after the command ({where})"
        return f"unknown option {stray}{_did_you_mean(stray, self._option_strings())}"

    def _unrecognized(self, first: str) -> str:
        """What to say of the first argument argparse did not take."""
        if not first.startswith("-"):
            return f"unexpected argument {first!r}"
        option = first.split("=", 1)[0]
        if option in self._option_strings():  # ours, but given before the command
            return f"{option} goes after the command ({self.prog} {option} ...)"
        return f"unknown option {option}{_did_you_mean(option, self._option_strings())}"

    def _suggest(self, message: str) -> str:
        """argparse's message, reworded with the closest valid option, command or value."""
        stray = self._stray_option() if self._commands() else None
        if stray and (message.endswith("required: COMMAND") or "argument COMMAND:" in message):
            return self._before_the_command(stray)
        if message.startswith("unrecognized arguments: "):
            return self._unrecognized(message.removeprefix("unrecognized arguments: ").split()[0])
        if "invalid choice: " in message:
            what, _, rest = message.partition(": invalid choice: ")
            word = rest.split("'")[1] if rest.count("'") >= 2 else rest
            choices = rest.partition("(choose from ")[2].rstrip(")").replace("'", "").split(", ")
            if what == "argument COMMAND":
                return f"unknown command {word!r}{_did_you_mean(word, choices)}"
            return f"{what.removeprefix('argument ')}: invalid choice {word!r}" + (
                _did_you_mean(word, choices) or f" (choose from {', '.join(choices)})"
            )
        return message


def add_options(parser: Parser, command: Command) -> None:
    """The command's options from the table, then its own arguments, its ``run`` and ``--debug``."""
    groups: dict[str | None, argparse._ActionsContainer] = {None: parser}
    for option in for_command(command.name):
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(option.group)
        kwargs: dict[str, object] = {"dest": option.dest, "help": option.help_line()}
        if option.takes_value:
            kwargs.update(action=option.action, metavar=option.metavar, choices=option.choices)
        else:  # a flag: None (not given) lets config.resolve fall back to the environment
            kwargs.update(action=option.action, default=0 if option.action == "count" else None)
        groups[option.group].add_argument(*option.flags, **kwargs)  # type: ignore[arg-type]
    module = importlib.import_module(command.module)
    configure = getattr(module, "configure", None)
    if configure is not None:
        configure(parser)
    # Also accepted after the command; SUPPRESS keeps a top-level --debug from being reset.
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    parser.set_defaults(_run=module.run, _parser=parser)
