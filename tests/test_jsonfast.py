"""jsonfast.loads answers exactly as json.loads, without importing json."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from azfed_helper._internal import jsonfast

from .conftest import cli_env

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
