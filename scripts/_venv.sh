# Shared by scripts/demo and scripts/test: create .venv once and install the project into it.
# Usage: source scripts/_venv.sh EXTRAS   (EXTRAS: "" for the demo, "test" for the test suite)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${AZFED_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
# A current pip writes console-script wrappers that start fast (older ones import re).
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
spec="$root"
if [ -n "${1:-}" ]; then spec="$root[$1]"; fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --config-settings editable_mode=strict -e "$spec"
export PATH="$venv/bin:$PATH"
cd "$root"
