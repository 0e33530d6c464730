#!/usr/bin/env bash
# Runs flowpack's whole test suite on a fresh machine (a Rust toolchain aside):
# installs the test tools into .venv (moto, the real S3 server the tests start on
# 127.0.0.1, and uv, which builds env layers), then runs every test of the workspace.
# It fails when no test ran, or fewer than expected: a suite that silently shrank is a bug.
set -euo pipefail
cd "$(dirname "$0")/.."

MIN_TESTS=68

if [ ! -x .venv/bin/moto_server ] || [ ! -x .venv/bin/uv ]; then
  echo "tests/run.sh: installing test tools into .venv (moto, uv)" >&2
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check 'moto[server]==5.2.5' 'uv==0.13.9'
fi
export FLOWPACK_TEST_MOTO="$PWD/.venv/bin/moto_server"
export FLOWPACK_TEST_UV="$PWD/.venv/bin/uv"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
read -r passed failed < <(awk '/^test result: /{for(i=1;i<=NF;i++){if($(i+1)~/^passed/)p+=$i; if($(i+1)~/^failed/)f+=$i}} END{print p+0, f+0}' "$log")
echo "$passed passed, $failed failed"
if [ "$#" -eq 0 ] && [ "$passed" -lt "$MIN_TESTS" ]; then
  echo "tests/run.sh: only $passed tests ran, expected at least $MIN_TESTS" >&2
  exit 1
fi
