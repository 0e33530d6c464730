#!/usr/bin/env bash
# Runs flowpack's whole test suite on a fresh machine (a Rust toolchain aside):
# installs the test tools into .venv — moto (a real S3 server), Azurite (the Azure Blob
# Storage emulator, from npm) and azure-storage-blob (to create its containers), both
# started by the tests on 127.0.0.1, and uv, which builds env layers — then runs every
# test of the workspace.
# It fails when no test ran, or fewer than expected: a suite that silently shrank is a bug.
set -euo pipefail
cd "$(dirname "$0")/.."

MIN_TESTS=93

if [ ! -x .venv/bin/moto_server ] || [ ! -x .venv/bin/uv ] || ! .venv/bin/python -c 'import azure.storage.blob' 2>/dev/null; then
  echo "tests/run.sh: installing Python test tools into .venv (moto, uv, azure-storage-blob)" >&2
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check \
    'moto[server]==5.2.5' 'uv==0.13.9' 'azure-storage-blob==12.*'
fi
if [ ! -x .venv/azurite/node_modules/.bin/azurite-blob ]; then
  echo "tests/run.sh: installing Azurite into .venv/azurite" >&2
  npm install --silent --no-audit --no-fund --prefix .venv/azurite azurite@3.37.0
fi
export FLOWPACK_TEST_MOTO="$PWD/.venv/bin/moto_server"
export FLOWPACK_TEST_UV="$PWD/.venv/bin/uv"
export FLOWPACK_TEST_PYTHON="$PWD/.venv/bin/python"
export FLOWPACK_TEST_AZURITE="$PWD/.venv/azurite/node_modules/.bin/azurite-blob"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
read -r passed failed < <(awk '/^test result: /{for(i=1;i<=NF;i++){if($(i+1)~/^passed/)p+=$i; if($(i+1)~/^failed/)f+=$i}} END{print p+0, f+0}' "$log")
echo "$passed passed, $failed failed"
if [ "$#" -eq 0 ] && [ "$passed" -lt "$MIN_TESTS" ]; then
  echo "tests/run.sh: only $passed tests ran, expected at least $MIN_TESTS" >&2
  exit 1
fi
