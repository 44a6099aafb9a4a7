#!/bin/sh
# Install the Debian packages tapwork needs to build and test (or benchmark),
# only those missing. Runs apt-get update at most once. Needs root for installs.
set -eu
PKGS="build-essential clang libclang-rt-14-dev pkg-config libssl-dev libyaml-dev libzstd-dev libjansson-dev
 libnghttp2-dev libcurl4-openssl-dev libpq-dev libcmocka-dev curl nghttp2-client python3-pytest python3-requests
 python3-websocket python3-h2 openssl procps iproute2 zstd pebble testssl.sh"
PKGS="$PKGS python3-yaml python3-jsonschema"   # tests/e2e/deploy (Helm chart, values schema)
if [ "${1:-}" = "--containers" ]; then
  # make test-containers: podman with runc, compose over podman's socket, debootstrap for
  # the base image when no registry is reachable (deploy/scripts/base-image.sh)
  PKGS="podman runc netavark aardvark-dns catatonit debootstrap docker-compose uidmap"
fi
if [ "${1:-}" = "--bench" ]; then
  PKGS="$PKGS haproxy nginx wrk restic borgbackup hyperfine time util-linux pgbackrest"
fi
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: not root; install these packages first:$missing" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
