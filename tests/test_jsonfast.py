"""jsonfast.loads answers exactly as json.loads, without importing json."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from azfed_helper._internal import jsonfast

from .conftest import REPO, cli_env

DOCUMENTS = [
    '{"a": [1, 2.5, "x\\u00e9", true, false, null], "b": {"c": -1e3}}',
    "  [1, 2]\n",
    '"text"',
    "0",
    '{"AccessToken": {"k": {"secret": "s", "expires_on": "1700000000"}}}',
]
INVALID = ["", "{", '{"a": }', "[1] x", "NaN", '{"a" 1}', "[1,]"]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_same_as_json(text: str) -> None:
    assert jsonfast.loads(text) == json.loads(text)
    assert jsonfast.loads(text.encode()) == json.loads(text)
    assert jsonfast.loads(b"\xef\xbb\xbf" + text.encode()) == json.loads(text)  # az writes a BOM


@pytest.mark.parametrize("text", INVALID)
def test_invalid_documents_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        jsonfast.loads(text)


def test_does_not_import_json_or_re() -> None:
    code = (
        "import sys; from azfed_helper._internal import jsonfast; jsonfast.loads('{\"a\": [1]}'); "
        "print(sorted(m for m in ('json', 're', 'enum') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True
    )
    assert done.stdout.strip() == "[]", done.stderr


def interpreters() -> list[str]:
    """Every CPython 3.10+ on this machine: jsonfast is standard library only, so each can run it
    with the repository on its path (3.10 and 3.11 behave differently from 3.12+)."""
    import glob
    import shutil

    candidates = [
        sys.executable,
        "/usr/bin/python3",
        *sorted(glob.glob("/root/.pyenv/versions/*/bin/python")),
    ]
    candidates += [shutil.which(f"python3.{minor}") or "" for minor in range(10, 15)]
    found: dict[str, str] = {}
    for path in candidates:
        if not path or not os.access(path, os.X_OK):
            continue
        done = subprocess.run(
            [path, "-c", "import sys; print(sys.version_info >= (3, 10), sys.version.split()[0])"],
            capture_output=True,
            text=True,
            check=False,
        )
        ok, _, version = done.stdout.strip().partition(" ")
        if ok == "True":
            found.setdefault(version, path)
    return sorted(found.values())


# Each line: one invalid document. 3.10 and 3.11 raised SystemError for the first three when json
# was not imported; every version raised RecursionError for the last two.
INVALID = ["{", '"abc', '"\\x"', '{"a": }', "[1,]", "NaN", "[" * 100000, '{"a":' * 5000]
CHECK_EVERY_INTERPRETER = r"""
import sys
from azfed_helper._internal import jsonfast
assert jsonfast.loads('{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}
assert "json" not in sys.modules, "the happy path imported json"
for text in sys.stdin.read().split("\n"):
    try:
        jsonfast.loads(text)
    except ValueError:
        continue
    except BaseException as exc:
        print(f"{sys.version.split()[0]}: {text[:12]!r} raised {type(exc).__name__}")
    else:
        print(f"{sys.version.split()[0]}: {text[:12]!r} was accepted")
print("checked")
"""


@pytest.mark.parametrize("python", interpreters())
def test_invalid_json_is_a_value_error_on_every_interpreter(python: str) -> None:
    done = subprocess.run(
        [
            python,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(REPO)!r})\n{CHECK_EVERY_INTERPRETER}",
        ],
        input="\n".join(INVALID),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.strip() == "checked", done.stdout + done.stderr
