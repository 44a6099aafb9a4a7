#!/bin/sh
# deploy/scripts/image.sh — build the tapwork image (what `make image` runs).
# Uses podman when it exists, else docker; TAPWORK_ENGINE=docker|podman picks.
# The tag comes from deploy/versions.env (TAPWORK_IMAGE); IMAGE=... overrides.
set -eu
cd "$(dirname "$0")/../.."
. deploy/versions.env

engine=${TAPWORK_ENGINE:-}
if [ -z "$engine" ]; then
	if command -v podman >/dev/null 2>&1; then engine=podman
	elif command -v docker >/dev/null 2>&1; then engine=docker
	else echo "image: neither podman nor docker found (see docs/deploy.md)" >&2; exit 2
	fi
fi
image=${IMAGE:-$TAPWORK_IMAGE}
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
version=${image##*:}

set -- --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" --build-arg "DEBIAN_SLIM_IMAGE=$DEBIAN_SLIM_IMAGE" \
	--build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "CREATED=$created" \
	-f deploy/docker/Dockerfile -t "$image" .
if [ "$engine" = podman ]; then
	. deploy/scripts/podman-env.sh
	TAPWORK_ENGINE=podman deploy/scripts/base-image.sh
	# --format docker keeps HEALTHCHECK (the OCI format has no such field);
	# the base images exist locally now, so never try a registry.
	podman build --pull=never --format docker "$@"
else
	docker build "$@"
fi
echo "image: built $image with $engine"
