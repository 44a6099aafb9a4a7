# deploy/scripts/podman-env.sh — source me: a podman configuration that works on
# machines where crun and setrlimit are not allowed (tapwork's CI): runc,
# cgroupfs, no default ulimits. It sets CONTAINERS_CONF unless that is already
# set, runc is missing, or TAPWORK_PODMAN_CONF=system (keep podman's own config).
if [ -z "${CONTAINERS_CONF:-}" ] && [ "${TAPWORK_PODMAN_CONF:-}" != system ] &&
	command -v runc >/dev/null 2>&1; then
	_tw_conf=${TMPDIR:-/tmp}/tapwork-containers.conf
	cat >"$_tw_conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
CONF
	CONTAINERS_CONF=$_tw_conf
	export CONTAINERS_CONF
	unset _tw_conf
fi
