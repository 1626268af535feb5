from __future__ import annotations

from .conftest import run_cli


def test_demo_runs_offline_and_never_prints_a_token() -> None:
    done = run_cli("demo")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "second write       no-op" in out
    assert "aud=https://management.azure.com" in out
    assert "first run" in out
    assert "from Entra" in out
    assert "from the on-disk cache" in out
    assert "(AADSTS700213)" in out
    assert "the app registration needs: issuer https://accounts.google.com" in out
    # No JWT (three base64url parts starting with the '{"' header) anywhere in the output.
    assert "eyJ" not in out + done.stderr
