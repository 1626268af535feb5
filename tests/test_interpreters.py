"""jsonfast and the CLI's fast paths on every Python >= 3.10 this machine has, not just the venv's.

Behaviour differs by version (on 3.10 and 3.11 jsonfast's C scanner raises SystemError for invalid
JSON, issue 11 §1), and users run the CLI with whatever python3 their system has (Debian 12: 3.11).
The fast paths use the standard library only, so each interpreter runs them bare: ``-I -S`` (no
site-packages, no PYTHON* variables, not the cwd) with this repository put on ``sys.path``.

Interpreters found: this one, ``$PYENV_ROOT/versions/*/bin/python3`` (default ``~/.pyenv``) and
every ``python3``/``python3.N`` on PATH (pyenv's shims excepted: they only launch the versions
above), the same executable counted once. One that cannot start is skipped, saying why.
"""

from __future__ import annotations

import ast
import base64
import glob
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from .conftest import REPO, make_jwt
from .test_azcli import CLIENT as AZ_CLIENT
from .test_azcli import TENANT as AZ_TENANT
from .test_azcli import write_az_state
from .test_cache import CLIENT as CACHE_CLIENT
from .test_cache import HOST as CACHE_HOST
from .test_cache import SCOPE as CACHE_SCOPE
from .test_cache import TENANT as CACHE_TENANT
from .test_cache import msal_cache
from .test_jsonfast import DOCUMENTS, INVALID

MINIMUM = (3, 10)
FLAGS = ("-I", "-S")
PROBE = "import sys; sys.stdout.write('%d.%d.%d ' % tuple(sys.version_info[:3]) + sys.executable)"


class Interpreter(NamedTuple):
    path: str
    version: tuple[int, ...]  # () when it cannot start
    problem: str = ""


def _candidates() -> list[str]:
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = [
        sys.executable,
        *sorted(glob.glob(os.path.join(pyenv, "versions", "*", "bin", "python3"))),
    ]
    shims = os.path.realpath(os.path.join(pyenv, "shims"))
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if directory and os.path.realpath(directory) != shims:
            names = glob.glob(os.path.join(directory, "python3*"))
            found += sorted(
                n for n in names if re.fullmatch(r"python3(\.\d+)?", os.path.basename(n))
            )
    return found


def _probe(path: str) -> Interpreter:
    try:
        done = subprocess.run(
            [path, *FLAGS, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Interpreter(os.path.realpath(path), (), f"{path} cannot start: {exc}")
    version, _, executable = done.stdout.partition(" ")
    if done.returncode != 0 or not executable:
        detail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return Interpreter(os.path.realpath(path), (), f"{path} cannot start: {detail}")
    return Interpreter(os.path.realpath(executable), tuple(int(n) for n in version.split(".")))


def discover() -> list[Interpreter]:
    """Each interpreter once (by its real executable), >= 3.10, plus those that cannot start."""
    tried: set[str] = set()
    found: dict[str, Interpreter] = {}
    for candidate in _candidates():
        if os.path.realpath(candidate) not in tried:
            tried.add(os.path.realpath(candidate))
            probed = _probe(candidate)
            if not probed.version or probed.version >= MINIMUM:
                found.setdefault(probed.path, probed)
    return list(found.values())


INTERPRETERS = discover()


def _ids(interpreters: list[Interpreter]) -> list[str]:
    ids: list[str] = []
    for interpreter in interpreters:
        name = "py" + ".".join(map(str, interpreter.version)) if interpreter.version else "unusable"
        ids.append(name if name not in ids else f"{name}-{len(ids)}")
    return ids


@pytest.fixture(params=INTERPRETERS, ids=_ids(INTERPRETERS))
def python(request: pytest.FixtureRequest) -> Interpreter:
    interpreter: Interpreter = request.param
    if not interpreter.version:
        pytest.skip(interpreter.problem)
    return interpreter


def run_bare(
    python: Interpreter, code: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``code`` in a bare ``python`` that imports this repository's azfed_helper."""
    prelude = f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"
    return subprocess.run(
        [python.path, *FLAGS, "-c", prelude + code],
        env={"HOME": os.environ["HOME"], **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_main(python: Interpreter, argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """The CLI's main(argv) as the console script runs it; also says if argparse was loaded,
    which only the normal path does (a bare interpreter could not finish that path anyway)."""
    code = (
        "from azfed_helper._internal.cli import main\n"
        f"code = main({argv!r})\n"
        "sys.stdout.write('NORMAL-PATH' if 'argparse' in sys.modules else '')\n"
        "sys.exit(code)\n"
    )
    done = run_bare(python, code, env)
    return done.returncode, done.stdout, done.stderr


def fast_path_answer(python: Interpreter, argv: list[str], env: dict[str, str]) -> str:
    """What the fast path returns for ``argv`` (``None``: the normal path takes over); a
    traceback instead fails the test."""
    code = (
        "from azfed_helper._internal.fastpath import try_fast_path\n"
        f"sys.stdout.write('ANSWER=%r' % (try_fast_path({argv!r}),))\n"
    )
    done = run_bare(python, code, env)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    return done.stdout.rpartition("ANSWER=")[2]


# -- jsonfast -----------------------------------------------------------------------------------


def test_jsonfast_parses_as_json_does(python: Interpreter) -> None:
    """As str, as UTF-8 bytes and with the BOM az writes, without importing json."""
    code = (
        "from azfed_helper._internal import jsonfast\n"
        f"texts = {DOCUMENTS!r}\n"
        "forms = texts + [t.encode() for t in texts] + [b'\\xef\\xbb\\xbf' + t.encode() for t in texts]\n"
        "sys.stdout.write(repr([jsonfast.loads(form) for form in forms]))\n"
        "assert 'json' not in sys.modules\n"
    )
    done = run_bare(python, code)
    assert done.returncode == 0, done.stderr
    assert ast.literal_eval(done.stdout) == [json.loads(text) for text in DOCUMENTS] * 3


def test_jsonfast_invalid_json_is_a_value_error(python: Interpreter) -> None:
    code = (
        "from azfed_helper._internal import jsonfast\n"
        "raised = []\n"
        f"for text in {INVALID!r}:\n"
        "    try:\n"
        "        jsonfast.loads(text)\n"
        "        raised.append(None)\n"
        "    except Exception as exc:\n"
        "        raised.append('ValueError' if isinstance(exc, ValueError) else type(exc).__name__)\n"
        "sys.stdout.write(repr(raised))\n"
    )
    done = run_bare(python, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout == repr(["ValueError"] * len(INVALID))


# -- the fast paths: no-op answers ----------------------------------------------------------------


def fresh_token_file(path: Path, token: str) -> Path:
    path.write_text(token)
    path.chmod(0o600)
    return path


def test_noop_write(python: Interpreter, tmp_path: Path) -> None:
    path = fresh_token_file(tmp_path / "token", make_jwt())
    assert run_main(python, ["write", "--token-file", str(path)], {}) == (0, "", "")


@pytest.fixture
def cache_env(tmp_path: Path) -> dict[str, str]:
    msal_cache(tmp_path / "cache", 3600, [CACHE_SCOPE])
    return {
        "AZFED_CACHE_DIR": str(tmp_path / "cache"),
        "AZURE_CLIENT_ID": CACHE_CLIENT,
        "AZURE_TENANT_ID": CACHE_TENANT,
        "AZURE_AUTHORITY_HOST": CACHE_HOST,
    }


def test_cache_hit_token(python: Interpreter, cache_env: dict[str, str]) -> None:
    assert run_main(python, ["token", "--scope", CACHE_SCOPE], cache_env) == (0, "AT\n", "")


@pytest.fixture
def az_env(tmp_path: Path) -> dict[str, str]:
    write_az_state(tmp_path / "azure", make_jwt())
    return {
        "AZURE_CONFIG_DIR": str(tmp_path / "azure"),
        "AZURE_CLIENT_ID": AZ_CLIENT,
        "AZURE_TENANT_ID": AZ_TENANT,
    }


def test_noop_az_login(python: Interpreter, az_env: dict[str, str]) -> None:
    assert run_main(python, ["az-login"], az_env) == (0, "", "")


# -- the fast paths: corrupt files are a miss, never a traceback ----------------------------------


def jwt_with_payload(payload: bytes) -> str:
    header = base64.urlsafe_b64encode(b'{"alg": "RS256"}').rstrip(b"=").decode()
    return f"{header}.{base64.urlsafe_b64encode(payload).rstrip(b'=').decode()}.c2ln"


def truncate_inside_a_string(path: Path) -> None:
    """Cut a JSON file short as an interrupted writer would, inside its first string."""
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b'"') + 3])


def test_write_with_a_token_whose_claims_are_not_an_object(
    python: Interpreter, tmp_path: Path
) -> None:
    path = fresh_token_file(tmp_path / "token", jwt_with_payload(b"[1, 2]"))
    assert fast_path_answer(python, ["write", "--token-file", str(path)], {}) == "None"


def test_write_with_a_token_whose_claims_are_cut_short(python: Interpreter, tmp_path: Path) -> None:
    path = fresh_token_file(tmp_path / "token", jwt_with_payload(b'{"exp": 1'))
    assert fast_path_answer(python, ["write", "--token-file", str(path)], {}) == "None"


def test_token_with_a_truncated_cache(python: Interpreter, cache_env: dict[str, str]) -> None:
    truncate_inside_a_string(Path(cache_env["AZFED_CACHE_DIR"]) / "msal_token_cache.json")
    assert fast_path_answer(python, ["token", "--scope", CACHE_SCOPE], cache_env) == "None"


def test_token_with_bad_kubernetes_exec_info(
    python: Interpreter, cache_env: dict[str, str]
) -> None:
    argv = ["token", "--scope", CACHE_SCOPE, "-o", "exec-credential"]
    env = {**cache_env, "KUBERNETES_EXEC_INFO": "{bad"}
    assert fast_path_answer(python, argv, env) == "None"


@pytest.mark.parametrize(
    "name", ["azfed-helper.json", "service_principal_entries.json", "azureProfile.json"]
)
def test_az_login_with_a_truncated_az_file(
    python: Interpreter, az_env: dict[str, str], name: str
) -> None:
    truncate_inside_a_string(Path(az_env["AZURE_CONFIG_DIR"]) / name)
    assert fast_path_answer(python, ["az-login"], az_env) == "None"
    assert fast_path_answer(python, ["az", "--", "version"], az_env) == "None"
