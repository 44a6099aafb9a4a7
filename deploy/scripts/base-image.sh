#!/bin/sh
# deploy/scripts/base-image.sh — make sure the Debian base images exist locally.
#
# With registry access `podman build` / `docker build` pull debian:bookworm and
# debian:bookworm-slim themselves; this script is for machines without a
# registry (like tapwork's CI): when podman says an image is missing, it builds
# one with debootstrap from the Debian mirror apt already uses and imports it
# under the official name, so the same Dockerfiles build offline.
#   deploy/scripts/base-image.sh            # both tags from one minbase rootfs
# Environment: CONTAINERS_CONF (see deploy/scripts/podman-env.sh), MIRROR.
set -eu
cd "$(dirname "$0")/../.."
. deploy/versions.env

engine=${TAPWORK_ENGINE:-podman}
if ! command -v "$engine" >/dev/null 2>&1; then
	echo "base-image: $engine not found" >&2
	exit 2
fi
if [ "$engine" != podman ]; then
	echo "base-image: $engine pulls base images from its registry; nothing to do"
	exit 0
fi

. deploy/scripts/podman-env.sh
missing=""
for img in "$DEBIAN_IMAGE" "$DEBIAN_SLIM_IMAGE"; do
	podman image exists "docker.io/library/$img" || missing="$missing $img"
done
if [ -z "$missing" ]; then
	echo "base-image: present: $DEBIAN_IMAGE $DEBIAN_SLIM_IMAGE"
	exit 0
fi
command -v debootstrap >/dev/null 2>&1 || { echo "base-image: debootstrap not found (apt-get install debootstrap)" >&2; exit 2; }

if [ -z "${MIRROR:-}" ]; then
	MIRROR=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | grep debian | head -n1 || true)
	[ -n "$MIRROR" ] || MIRROR=$(awk '/^deb .*debian/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
	[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
fi

rootfs=$(mktemp -d /tmp/tapwork-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT INT TERM
echo "base-image: debootstrap bookworm from $MIRROR (about a minute)"
debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || {
	tail -n 20 "$rootfs.log" >&2
	rm -f "$rootfs.log"
	exit 1
}
rm -f "$rootfs.log"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
	"$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
# The same rootfs serves both names: the build stage installs its -dev
# packages with apt, so it does not need the bigger official image.
for img in $missing; do
	tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "docker.io/library/$img" >/dev/null
	echo "base-image: imported docker.io/library/$img"
done
