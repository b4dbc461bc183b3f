#!/bin/sh
# Regenerates the image's hash locks from pyproject.toml (needs uv and PyPI; run after changing a
# dependency, then commit both files; tests/deploy/test_lock.py fails while they disagree):
#   deploy/requirements.lock        every runtime dependency, pinned, with the hash of each file
#                                   PyPI has for that version (any platform the image is built on)
#   deploy/build-requirements.lock  [build-system].requires (hatchling), to build msgreach's wheel
# Resolved for Python 3.11 (the image's), for every platform (`--universal`: markers kept).
set -eu
cd "$(dirname "$0")/.."
compile() {
  uv pip compile --quiet --no-config --index-url https://pypi.org/simple --generate-hashes --universal \
    --python-version 3.11 --custom-compile-command "deploy/lock.sh" "$@"
}
compile pyproject.toml -o deploy/requirements.lock
python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))' \
  | compile - -o deploy/build-requirements.lock
