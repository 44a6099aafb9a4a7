#!/bin/sh
# Install the Debian packages tapwork needs to build and test (or benchmark),
# only those missing. Runs apt-get update at most once. Needs root for installs.
set -eu
PKGS="build-essential clang libclang-rt-14-dev pkg-config libssl-dev libyaml-dev libzstd-dev libjansson-dev
 libnghttp2-dev libcurl4-openssl-dev libpq-dev libbrotli-dev zlib1g-dev libcmocka-dev curl nghttp2-client python3-pytest python3-requests
 python3-websocket python3-h2 openssl procps iproute2 zstd pebble testssl.sh nginx"   # nginx: the upstream of tests/e2e/edge/test_pool.py
PKGS="$PKGS python3-yaml python3-jsonschema"   # tests/e2e/deploy (Helm chart, values schema)
PKGS="$PKGS brotli python3-brotli python3-zstandard caddy"   # tests/e2e/compress (decode what the edge encodes; caddy: the differential peer)
PKGS="$PKGS haproxy nginx"   # tests/e2e/proxyproto: the PROXY protocol senders and receivers, limit_req
PKGS="$PKGS python3-kubernetes"   # tests/e2e/k8s (a real client against the test API server; kubectl comes from the Google Cloud SDK, not Debian)
# The programs the build and the tests run, checked after the install so that a missing one
# is named here rather than as a failure in the middle of a test run.
BINS="cc clang pkg-config curl nghttp h2load nginx haproxy openssl pebble pebble-challtestsrv testssl zstd brotli caddy ip ps /usr/bin/python3"
if [ "${1:-}" = "--containers" ]; then
  # make test-containers: podman with runc, compose over podman's socket, debootstrap for
  # the base image when no registry is reachable (deploy/scripts/base-image.sh). netavark
  # builds the Compose network's bridge and NAT with iptables, which podman only suggests.
  PKGS="podman runc netavark aardvark-dns catatonit debootstrap docker-compose uidmap iptables"
  # what those call, by path: a package can install and still leave one out
  BINS="podman runc conmon /usr/lib/podman/netavark /usr/lib/podman/aardvark-dns iptables
 catatonit debootstrap docker-compose newuidmap newgidmap"
fi
if [ "${1:-}" = "--bench" ]; then
  PKGS="$PKGS haproxy nginx wrk restic borgbackup hyperfine time util-linux pgbackrest"
  PKGS="$PKGS libjs-jquery libjs-bootstrap libjs-d3"   # bench/compress.sh's corpus
  BINS="$BINS haproxy nginx wrk restic borg hyperfine /usr/bin/time taskset pgbackrest"
fi
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "deps: installing:$missing"
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: not root; install these packages first:$missing" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
absent=""
for b in $BINS; do
  case "$b" in
  /*) [ -x "$b" ] || absent="$absent $b" ;;
  *) command -v "$b" >/dev/null 2>&1 || absent="$absent $b" ;;
  esac
done
if [ -n "$absent" ]; then
  echo "deps: installed, but these programs are still missing:$absent" >&2
  exit 1
fi
