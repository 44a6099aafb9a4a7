# deploy/scripts/podman-env.sh — source me: a podman configuration that works on
# machines where crun and setrlimit are not allowed (tapwork's CI). On a normal
# workstation you do not need it. Sets CONTAINERS_CONF unless already set.
if [ -z "${CONTAINERS_CONF:-}" ]; then
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
