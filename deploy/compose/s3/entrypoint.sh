#!/bin/sh
# Start moto's S3 server from the Python prefix mounted at $MOTO_PYTHON
# (see Dockerfile). Objects live in memory only: they are gone when the
# container stops. The arguments are moto_server's (the image's CMD:
# -H 0.0.0.0 -p 9000).
set -eu
py=
for c in "$MOTO_PYTHON/bin/python3" "$MOTO_PYTHON"/bin/python3.*; do
	if [ -x "$c" ]; then
		py=$c
		break
	fi
done
if [ -z "$py" ]; then
	echo "s3-entrypoint: no Python at $MOTO_PYTHON/bin: mount a Python prefix that has moto" \
		"installed there (MOTO_PYTHON_PREFIX in deploy/compose/offline.yaml)" >&2
	exit 2
fi
# Without moto in that prefix this fails with "No module named moto":
# pip install 'moto[server]' there.
exec "$py" -m moto.server "$@"
