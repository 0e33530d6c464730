#!/usr/bin/env bash
# Builds flowpack's two images with podman, without any registry:
#   localhost/flowpack-runtime:VERSION  FROM scratch: static flowpack + CA bundle, user 65532
#   localhost/flowpack-python:3.11      Debian bookworm + python3 + flowpack, user 65532
# (plus the tags localhost/flowpack-runtime:latest and localhost/flowpack-python:3.11-VERSION).
#
# usage: images/build.sh [--binary PATH] [--only runtime|python]
#   --binary PATH  use this static flowpack binary instead of building one
#   --only NAME    build one image
# environment:
#   PODMAN                 the podman command (default: podman); podman's own CONTAINERS_CONF
#                          and CONTAINERS_STORAGE_CONF choose its config and image storage
#   FLOWPACK_IMAGE_CACHE   where the Debian root filesystem is cached
#                          (default: ${XDG_CACHE_HOME:-$HOME/.cache}/flowpack-images)
#   DEBIAN_MIRROR          the Debian mirror for debootstrap (default: the host's apt source)
#
# The binary is linked statically against glibc (`+crt-static`), so it runs in any Linux image.
# The Debian root filesystem is made once with debootstrap (needs root, about 2 minutes) and
# reused from the cache; delete the cache file to refresh it. Prints each image's size.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PODMAN=${PODMAN:-podman}
CACHE=${FLOWPACK_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flowpack-images}
TARGET=x86_64-unknown-linux-gnu
SUITE=bookworm
PYTHON=3.11
# Bump when the root filesystem recipe below changes: the cache key and the base image tag.
BASE_RECIPE=1
BASE_TAR="$CACHE/debian-$SUITE-python$PYTHON-r$BASE_RECIPE.tar"
BASE_IMAGE="localhost/flowpack-debian-python-base:$SUITE-r$BASE_RECIPE"

die() { echo "images/build.sh: $*" >&2; exit 1; }

BINARY="" ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) BINARY=${2:?--binary needs a path}; shift 2 ;;
    --only) ONLY=${2:?--only needs runtime or python}; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
case "$ONLY" in ""|runtime|python) ;; *) die "--only takes runtime or python, not '$ONLY'" ;; esac
command -v "${PODMAN%% *}" >/dev/null || die "podman is not installed (Debian: apt-get install podman runc)"

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
REVISION=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE=$(sed -n 's/^repository = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)

if [ -z "$BINARY" ]; then
  echo "building the static flowpack binary ($TARGET, +crt-static)" >&2
  (cd "$ROOT" && RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked --quiet --target "$TARGET" --bin flowpack)
  BINARY="${CARGO_TARGET_DIR:-$ROOT/target}/$TARGET/release/flowpack"
fi
[ -x "$BINARY" ] || die "no executable at $BINARY"
if readelf -d "$BINARY" 2>/dev/null | grep -q NEEDED; then
  die "$BINARY is dynamically linked; images need the static build (leave out --binary)"
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# The images carry the binary without its symbol table (18 instead of 22 MB).
strip -o "$WORK/flowpack" "$BINARY" 2>/dev/null || cp "$BINARY" "$WORK/flowpack"
BINARY="$WORK/flowpack"
BIN_DIGEST=$(sha256sum "$BINARY" | cut -d' ' -f1)

labels() { # title description
  printf -- '--label\0%s\0' \
    "org.opencontainers.image.title=$1" \
    "org.opencontainers.image.description=$2" \
    "org.opencontainers.image.version=$VERSION" \
    "org.opencontainers.image.revision=$REVISION" \
    "org.opencontainers.image.source=$SOURCE" \
    "org.opencontainers.image.licenses=Apache-2.0" \
    "dev.flowpack.binary.sha256=$BIN_DIGEST"
}

build() { # name context tag... (labels on stdin as NUL-separated args)
  local name=$1 ctx=$2; shift 2
  local tags=() t
  for t in "$@"; do tags+=(-t "$t"); done
  local label_args=()
  mapfile -d '' label_args
  $PODMAN build -q --pull=never "${label_args[@]}" "${tags[@]}" "${BUILD_ARGS[@]}" "$ctx" >/dev/null
  echo "built $name: $*" >&2
}

# The Debian root filesystem: debootstrap, python3 and CA certificates in a chroot, the
# flowpack user, then a tarball in the cache. Only when the cache lacks it.
base_rootfs() {
  [ -s "$BASE_TAR" ] && return 0
  [ "$(id -u)" = 0 ] || die "debootstrap needs root to make $BASE_TAR (run once as root)"
  command -v debootstrap >/dev/null || die "debootstrap is not installed (Debian: apt-get install debootstrap)"
  local mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
  mirror=${mirror:-http://deb.debian.org/debian}
  local r="$WORK/rootfs"
  echo "making the Debian $SUITE root filesystem (debootstrap from $mirror, about 2 minutes)" >&2
  debootstrap --variant=minbase "$SUITE" "$r" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
  cp /etc/resolv.conf "$r/etc/resolv.conf"
  mount --bind /proc "$r/proc"
  local rc=0
  chroot "$r" sh -euc "
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 ca-certificates
    python3 -c 'import sys; assert sys.version.startswith(\"$PYTHON.\"), sys.version'
    groupadd -g 65532 flowpack
    useradd -u 65532 -g 65532 -m -d /home/flowpack -s /usr/sbin/nologin flowpack
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/log/* /usr/share/doc/* /usr/share/man/* /usr/share/info/*
  " >"$WORK/chroot.log" 2>&1 || rc=$?
  umount "$r/proc"
  [ $rc = 0 ] || { tail -20 "$WORK/chroot.log" >&2; die "installing python3 in the root filesystem failed"; }
  : >"$r/etc/resolv.conf"
  mkdir -p "$CACHE"
  tar -C "$r" --numeric-owner -cf "$BASE_TAR.tmp" . && mv "$BASE_TAR.tmp" "$BASE_TAR"
}

BUILD_ARGS=()
if [ "$ONLY" != python ]; then
  ctx="$WORK/runtime"
  cp -r "$ROOT/images/runtime" "$ctx"
  mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc/ssl/certs" "$ctx/home" "$ctx/tmp"
  cp "$BINARY" "$ctx/rootfs/usr/local/bin/flowpack"
  CA=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
  [ -s "$CA" ] || die "no CA bundle at $CA (Debian: apt-get install ca-certificates)"
  cp "$CA" "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
  labels flowpack-runtime "flowpack static binary, CA bundle, non-root user" \
    | build runtime "$ctx" "localhost/flowpack-runtime:$VERSION" localhost/flowpack-runtime:latest
fi

if [ "$ONLY" != runtime ]; then
  if ! $PODMAN image exists "$BASE_IMAGE"; then
    base_rootfs
    $PODMAN import -q "$BASE_TAR" "$BASE_IMAGE" >/dev/null
  fi
  ctx="$WORK/python"
  cp -r "$ROOT/images/python" "$ctx"
  cp "$BINARY" "$ctx/flowpack"
  BUILD_ARGS=(--build-arg "BASE=$BASE_IMAGE")
  labels flowpack-python "Debian $SUITE, python $PYTHON and flowpack, non-root user" \
    | build python "$ctx" "localhost/flowpack-python:$PYTHON" "localhost/flowpack-python:$PYTHON-$VERSION"
fi

for image in localhost/flowpack-runtime:latest "localhost/flowpack-python:$PYTHON"; do
  case "$image:$ONLY" in *runtime*:python|*python*:runtime) continue ;; esac
  $PODMAN image inspect --format "{{.Size}}" "$image" \
    | awk -v i="$image" '{printf "%s\t%.1f MB\n", i, $1 / 1e6}'
done
