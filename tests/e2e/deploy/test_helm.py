"""The Helm chart: render (helm or chart-render), validate (k8s-validate),
and check what matters for a 3-node HA install."""
import json
import os
import re
import subprocess
import tempfile

import pytest

from conftest import BIN, ROOT
from helmutil import CHART, EXAMPLES, by_kind, one, render, renderer, validator

yaml = pytest.importorskip("yaml", reason="python3-yaml not installed")

PREFIX, RENDERER = renderer()
pytestmark = pytest.mark.skipif(PREFIX is None, reason=str(RENDERER))

PROD = os.path.join(EXAMPLES, "values-production.yaml")
REMOVED_APIS = {  # apiVersion -> removed in
    "extensions/v1beta1": "1.22", "apps/v1beta1": "1.16", "apps/v1beta2": "1.16",
    "policy/v1beta1": "1.25", "networking.k8s.io/v1beta1": "1.22", "batch/v1beta1": "1.25",
    "rbac.authorization.k8s.io/v1beta1": "1.22", "autoscaling/v2beta1": "1.25",
    "autoscaling/v2beta2": "1.26", "discovery.k8s.io/v1beta1": "1.25",
}


@pytest.fixture(scope="module")
def default():
    return render(PREFIX)


@pytest.fixture(scope="module")
def prod():
    return render(PREFIX, "-f", PROD)


INGRESS_VALUES = {"ingressController": {"enabled": True}}


@pytest.fixture(scope="module")
def ingress(tmp_path_factory):
    """Ingress-controller mode with its defaults (values files, not --set:
    chart-render's --set does not make lists)."""
    f = tmp_path_factory.mktemp("ingress") / "values.yaml"
    f.write_text(yaml.safe_dump(INGRESS_VALUES))
    return render(PREFIX, "-f", str(f))


def pod_spec(docs):
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def pod_labels(docs):
    return one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def config_of(docs):
    return yaml.safe_load(one(docs, "ConfigMap")["data"]["tapwork.yaml"])


def cronjob(docs, component):
    found = [d for d in by_kind(docs, "CronJob")
             if d["metadata"]["labels"]["app.kubernetes.io/component"] == component]
    assert len(found) == 1, f"{len(found)} {component} CronJobs"
    return found[0]


def checksum(docs):
    return one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


def test_k8s_validate_default_production_and_ingress(tmp_path, default, prod, ingress):
    tool = validator()
    if tool is None:
        pytest.skip("k8s-validate not found (set TAPWORK_K8S_VALIDATE)")
    files = []
    for name, (_, text) in (("default", default), ("production", prod), ("ingress", ingress)):
        f = tmp_path / f"{name}.yaml"
        f.write_text(text)
        files.append(str(f))
    r = subprocess.run([tool] + files, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"(\d+) passed, (\d+) failed", r.stdout)
    assert m and int(m.group(2)) == 0 and int(m.group(1)) == len(default[0]) + len(prod[0]) + len(ingress[0]), \
        r.stdout


def test_kinds(default, prod, ingress):
    kinds = sorted(d["kind"] for d in default[0])
    # ingress-controller mode off: no IngressClass, no RBAC at all
    assert kinds == sorted(["ConfigMap", "Deployment", "Service", "Service", "PodDisruptionBudget",
                            "ServiceAccount", "NetworkPolicy"])
    ic = ["IngressClass", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
    assert sorted(d["kind"] for d in ingress[0]) == sorted(kinds + ic)
    assert len(by_kind(prod[0], "CronJob")) == 2   # backup + maintenance
    assert len(by_kind(prod[0], "PersistentVolumeClaim")) == 1   # shared ACME state
    for kind in ic:                               # the production example runs the controller
        assert len(by_kind(prod[0], kind)) == 1, kind


def test_no_removed_apis_and_no_latest(default, prod):
    for docs, _ in (default, prod):
        for d in docs:
            assert d["apiVersion"] not in REMOVED_APIS, (d["kind"], d["apiVersion"])
        images = re.findall(r"image: (\S+)", yaml.safe_dump_all(docs))
        assert images
        for img in images:
            assert ":" in img.rsplit("/", 1)[-1], f"untagged image {img}"
            assert not img.endswith(":latest"), img


def test_three_replicas_one_per_node_spread_over_zones(default):
    docs, _ = default
    dep = one(docs, "Deployment")
    assert dep["spec"]["replicas"] == 3
    labels = pod_labels(docs)
    assert selects(dep["spec"]["selector"], labels)
    terms = pod_spec(docs)["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert len(terms) == 1 and terms[0]["topologyKey"] == "kubernetes.io/hostname"
    assert selects(terms[0]["labelSelector"], labels)
    spread = pod_spec(docs)["topologySpreadConstraints"]
    assert spread[0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread[0]["maxSkew"] == 1 and selects(spread[0]["labelSelector"], labels)


def test_preferred_anti_affinity_option():
    docs, _ = render(PREFIX, "--set", "podAntiAffinity=preferred")
    aa = pod_spec(docs)["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in aa
    assert aa["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["topologyKey"] == \
        "kubernetes.io/hostname"


def test_pdb(default):
    docs, _ = default
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 2
    assert selects(pdb["spec"]["selector"], pod_labels(docs))


def test_probes_on_admin_port(default):
    docs, _ = default
    c = pod_spec(docs)["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    admin = int(config_of(docs)["admin"]["listen"].rsplit(":", 1)[1])
    assert ports["admin"] == admin
    assert int(config_of(docs)["listen"]["http"].rsplit(":", 1)[1]) == ports["http"]
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        assert c[probe]["httpGet"] == {"path": path, "port": "admin"}, probe


def test_security_context(default, prod):
    for docs, _ in (default, prod):
        specs = [pod_spec(docs)] + [cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
                                    for cj in by_kind(docs, "CronJob")]
        for spec in specs:
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert spec["securityContext"]["runAsUser"] == 10001
            for c in spec["containers"] + spec.get("initContainers", []):
                sc = c["securityContext"]
                assert sc["readOnlyRootFilesystem"] is True
                assert sc["allowPrivilegeEscalation"] is False
                assert sc["capabilities"]["drop"] == ["ALL"]
                assert "add" not in sc["capabilities"]


def quantity(q):
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(q))
    return float(m.group(1)) * units.get(m.group(2), 1)


def test_resources_fit_a_4cpu_16gib_node(default):
    docs, _ = default
    res = pod_spec(docs)["containers"][0]["resources"]
    req, lim = res["requests"], res["limits"]
    assert 0 < quantity(req["cpu"]) <= quantity(lim["cpu"]) <= 4
    assert 0 < quantity(req["memory"]) <= quantity(lim["memory"]) <= 16 * 2**30
    # workers match the CPU limit, not the node's CPU count
    assert config_of(docs)["workers"] == int(quantity(lim["cpu"]))


def test_rolling_update_and_graceful_termination(default):
    docs, _ = default
    dep = one(docs, "Deployment")
    ru = dep["spec"]["strategy"]["rollingUpdate"]
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate" and ru["maxUnavailable"] == 0
    drain = config_of(docs)["timeouts"]["drain"]
    assert drain.endswith("s")
    spec = pod_spec(docs)
    sleep = int(spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert spec["terminationGracePeriodSeconds"] >= int(drain[:-1]) + sleep


def test_grace_shorter_than_drain_is_refused():
    r = render(PREFIX, "--set", "terminationGracePeriodSeconds=20", check=False)
    assert r.returncode != 0 and "terminationGracePeriodSeconds" in r.stderr
    r = render(PREFIX, "--set", "image.tag=latest", check=False)
    assert r.returncode != 0 and "latest" in r.stderr


def test_service_networkpolicy_and_no_controller_by_default(default):
    docs, _ = default
    lb = [s for s in by_kind(docs, "Service") if s["spec"]["type"] == "LoadBalancer"]
    assert len(lb) == 1
    assert lb[0]["spec"]["externalTrafficPolicy"] == "Local"
    assert sorted(p["port"] for p in lb[0]["spec"]["ports"]) == [80, 443]
    assert selects({"matchLabels": lb[0]["spec"]["selector"]}, pod_labels(docs))
    admin = [s for s in by_kind(docs, "Service") if s["spec"]["type"] == "ClusterIP"]
    assert admin and admin[0]["spec"]["ports"][0]["targetPort"] == "admin"

    # no ingress-controller mode: no IngressClass, no RBAC, no API token
    for kind in ("IngressClass", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        assert not by_kind(docs, kind), kind
    sa = one(docs, "ServiceAccount")
    assert pod_spec(docs)["serviceAccountName"] == sa["metadata"]["name"]
    assert sa["automountServiceAccountToken"] is False
    assert pod_spec(docs)["automountServiceAccountToken"] is False
    assert "kubernetes" not in config_of(docs)

    np = one(docs, "NetworkPolicy")
    assert selects(np["spec"]["podSelector"], pod_labels(docs))
    open_ports = {p["port"] for rule in np["spec"]["ingress"] if "from" not in rule for p in rule["ports"]}
    assert open_ports == {8080, 8443}  # the admin port is not open to everyone


def test_checksum_follows_config_only(default):
    base = checksum(default[0])
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    changed = checksum(render(PREFIX, "--set", "config.log.level=debug")[0])
    assert changed != base
    drain = render(PREFIX, "--set", "config.drainSeconds=35")[0]
    assert checksum(drain) not in (base, changed)
    assert config_of(drain)["timeouts"]["drain"] == "35s"
    assert checksum(render(PREFIX, "--set", "replicaCount=5")[0]) == base


def test_backup_cronjob_and_secrets_are_documented(prod):
    docs, _ = prod
    cj = cronjob(docs, "backup")
    assert cj["spec"]["schedule"] == "15 2 * * *"
    assert cj["spec"]["concurrencyPolicy"] == "Forbid"
    spec = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    c = spec["containers"][0]
    assert c["args"] == ["backup", "--job", "nightly", "-c", "/etc/tapwork/tapwork.yaml"]
    # The job is in the config the CronJob mounts, without a schedule (the
    # CronJob is the schedule; the edge pods must not run it too).
    job = config_of(docs)["backup"]["jobs"]["nightly"]
    assert "schedule" not in job
    assert job["repository"].startswith("s3:https://")
    assert {"postgres", "path"} <= {k for src in job["sources"] for k in src}
    # S3 credentials and PGPASSWORD as env from Secrets, the repository
    # password as a file from a Secret volume, where password_file points.
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert env["AWS_ACCESS_KEY_ID"] == {"name": "tapwork-backup-s3", "key": "access_key_id"}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"name": "tapwork-backup-s3", "key": "secret_access_key"}
    assert env["PGPASSWORD"]["name"] == "tapwork-backup-postgres"
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    pw_dir, pw_name = os.path.split(job["password_file"])
    pw_vol = vols[mounts[pw_dir]]["secret"]
    assert pw_vol["secretName"] == "tapwork-backup-repository"
    assert {"key": "password", "path": pw_name} in pw_vol["items"]
    assert pw_vol["defaultMode"] & 0o040   # readable through fsGroup by uid 10001
    # Every path source is a volume mounted (read-only) in the backup pod.
    for src in job["sources"]:
        if "path" in src:
            assert src["path"] in mounts, src
            assert vols[mounts[src["path"]]]["persistentVolumeClaim"]["readOnly"] is True
    refs = {e["valueFrom"]["secretKeyRef"]["name"]
             for d in docs if d["kind"] in ("Deployment", "CronJob")
             for spec in [d["spec"]["template"]["spec"] if d["kind"] == "Deployment"
                          else d["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
             for c in spec["containers"] for e in c.get("env", [])
             if "secretKeyRef" in e.get("valueFrom", {})}
    refs |= {v["secret"]["secretName"]
             for d in docs if d["kind"] in ("Deployment", "CronJob")
             for spec in [d["spec"]["template"]["spec"] if d["kind"] == "Deployment"
                          else d["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
             for v in spec.get("volumes", []) if "secret" in v}
    assert {"tapwork-backup-repository", "tapwork-backup-s3", "tapwork-backup-postgres"} <= refs
    created = {d["metadata"]["name"] for d in by_kind(docs, "Secret")}
    doc = open(os.path.join(ROOT, "docs", "deploy.md")).read()
    for name in refs - created:
        assert f"`{name}`" in doc, f"Secret {name} is neither created nor documented in docs/deploy.md"


def test_values_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.load(open(os.path.join(CHART, "values.schema.json")))
    jsonschema.Draft7Validator.check_schema(schema)
    values = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))
    jsonschema.validate(values, schema)
    prod_values = yaml.safe_load(open(PROD))
    merged = dict(values, **prod_values)
    jsonschema.validate(merged, schema)
    bad = [
        {"image": {"repository": "tapwork", "tag": "latest"}},
        {"replicaCount": 0},
        {"certStorage": {"type": "s3"}},              # S3 store needs a location
        {"certStorage": {"type": "s3", "s3": {"location": "https://x/b"}}},  # not an s3: URL
        {"certStorage": {"type": "volume", "volume": {"size": "lots"}}},
        {"acme": {"challenges": ["dns-01"]}},           # dns-01 needs dnsHook
        {"acme": {"challenges": ["http-02"]}},
        {"backup": dict(values["backup"], enabled=True)},  # no repository, no sources
        {"backup": dict(values["backup"], enabled=True, repository="/srv/backups",
                        sources=[{"path": "/data"}])},     # not S3
        {"service": {"type": "LoadBalancer", "externalTrafficPolicy": "Sometimes"}},
        {"config": dict(values["config"], timeouts={"drain": "5s"})},
        {"backup": dict(values["backup"], schedule="nightly")},
        {"unknownKey": 1},
    ]
    for b in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(dict(values, **b), schema)


def validate_config(tmp_path, docs):
    f = tmp_path / "tapwork.yaml"
    # static roots are the staticAssets volume in the pod; here, the example
    # app's public files (the same tree)
    public = os.path.join(ROOT, "examples", "app", "public")
    f.write_text(one(docs, "ConfigMap")["data"]["tapwork.yaml"].replace("/srv/app/public", public))
    return subprocess.run([BIN, "validate", "-c", str(f)], capture_output=True, text=True, timeout=60)


def test_tapwork_validates_rendered_config(tmp_path, default, prod):
    r = validate_config(tmp_path, default[0])
    assert r.returncode == 0, r.stdout + r.stderr
    over = tmp_path / "values.yaml"
    over.write_text(yaml.safe_dump({"config": {
        "workers": 4, "drainSeconds": 10, "trustedProxies": ["10.0.0.0/8"],
        "limits": {"max_body": "8MiB"}, "timeouts": {"keepalive": "30s"},
        "sites": [{"hosts": ["app.example.test"], "routes": [{"path": "/", "backend": "app"}]}],
        "backends": {"app": {"servers": ["127.0.0.1:3000", "127.0.0.1:3001"],
                             "health": {"path": "/healthz"}}}}}))
    docs, _ = render(PREFIX, "-f", str(over))
    r = validate_config(tmp_path, docs)
    assert r.returncode == 0, r.stdout + r.stderr
    assert config_of(docs)["timeouts"] == {"drain": "10s", "keepalive": "30s"}
    # The production example names Service DNS names that only resolve in the
    # cluster (tapwork resolves backend names at load): the only complaint allowed.
    r = validate_config(tmp_path, prod[0])
    assert r.returncode == 0 or "cannot resolve" in r.stdout + r.stderr, r.stdout + r.stderr


def edge_mounts(docs):
    c = pod_spec(docs)["containers"][0]
    vols = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    return {m["mountPath"]: vols[m["name"]] for m in c["volumeMounts"]}


def test_https_and_acme_rendered(default, prod):
    for docs, _ in (default, prod):
        cfg = config_of(docs)
        c = pod_spec(docs)["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert int(cfg["listen"]["https"].rsplit(":", 1)[1]) == ports["https"]
        assert cfg["state_dir"] == "/var/lib/tapwork"
        assert "emptyDir" in edge_mounts(docs)[cfg["state_dir"]]   # writable, read-only root fs
        assert cfg["acme"]["directory"].startswith("https://")
        # nothing pretends to configure tapwork through env any more
        assert not [e for e in c.get("env", []) if e["name"].startswith("TAPWORK_")]
    cfg = config_of(prod[0])
    assert cfg["acme"]["email"] == "ops@example.com"
    assert cfg["acme"]["challenges"] == ["dns-01"] and cfg["acme"]["dns_hook"].startswith("/")
    assert [s["tls"] for s in cfg["sites"]] == ["acme"]
    assert "challenges" not in config_of(default[0])["acme"]


def test_cert_storage_variants(default, prod):
    assert "/var/lib/tapwork/acme" not in edge_mounts(default[0])       # none
    pvc = one(prod[0], "PersistentVolumeClaim")                         # volume
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["storageClassName"] == "efs-sc"
    m = edge_mounts(prod[0])["/var/lib/tapwork/acme"]
    assert m["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    docs, _ = render(PREFIX, "--set", "certStorage.type=volume",
                     "--set", "certStorage.volume.existingClaim=shared-acme")
    assert not by_kind(docs, "PersistentVolumeClaim")
    assert edge_mounts(docs)["/var/lib/tapwork/acme"]["persistentVolumeClaim"]["claimName"] == "shared-acme"
    docs, _ = render(PREFIX, "--set", "certStorage.type=secret")
    m = edge_mounts(docs)["/etc/tapwork/certs"]
    assert m["secret"]["secretName"] == "tapwork-certs"
    assert pod_spec(docs)["automountServiceAccountToken"] is False
    doc = open(os.path.join(ROOT, "docs", "deploy.md")).read()
    assert "`tapwork-certs`" in doc
    # s3: every replica shares the ACME store on S3 (acme.store), keys from a Secret
    docs, _ = render(PREFIX, "--set", "certStorage.type=s3",
                     "--set", "certStorage.s3.location=s3:https://s3.example.com/certs/tapwork")
    cm = one(docs, "ConfigMap")
    cfg = yaml.safe_load(cm["data"]["tapwork.yaml"])
    assert cfg["acme"]["store"] == "s3:https://s3.example.com/certs/tapwork"
    env = {e["name"]: e for c in pod_spec(docs)["containers"] for e in c.get("env", [])}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "tapwork-acme-s3"
    r = render(PREFIX, "--set", "certStorage.type=s3", check=False)
    assert r.returncode != 0 and "certStorage.s3.location" in r.stderr


def test_backup_needs_repository_and_sources():
    r = render(PREFIX, "--set", "backup.enabled=true", check=False)
    assert r.returncode != 0 and "backup" in r.stderr


def test_tapwork_validates_backup_and_acme_config(tmp_path):
    """A config with HTTPS, ACME sites and the backup job, all names resolvable
    here: tapwork must accept it as a whole."""
    over = tmp_path / "values.yaml"
    over.write_text(yaml.safe_dump({
        "acme": {"email": "ops@example.test", "challenges": ["http-01", "tls-alpn-01"]},
        "config": {"sites": [{"hosts": ["www.example.com"], "tls": "acme",
                              "routes": [{"path": "/", "backend": "app"}]},
                             {"hosts": ["*"], "routes": [{"path": "/", "handler": "welcome"}]}],
                   "backends": {"app": {"servers": ["127.0.0.1:3000"]}}},
        "backup": {"enabled": True, "repository": "s3:https://s3.example.test/backups/edge",
                   "sources": [{"postgres": "postgresql://app@127.0.0.1/app"},
                               {"path": "/data/uploads", "exclude": ["*.tmp"]}],
                   "volumes": [{"name": "uploads", "claimName": "app-uploads",
                                "mountPath": "/data/uploads"}]}}))
    docs, _ = render(PREFIX, "-f", str(over))
    r = validate_config(tmp_path, docs)
    assert r.returncode == 0, r.stdout + r.stderr
    job = config_of(docs)["backup"]["jobs"]["nightly"]
    assert job["retention"] == {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 6}
    # tapwork rejects what it does not know: a broken job is caught by the same check
    bad = one(docs, "ConfigMap")["data"]["tapwork.yaml"].replace("keep_daily", "keep_dailyy")
    f = tmp_path / "bad.yaml"
    f.write_text(bad)
    r = subprocess.run([BIN, "validate", "-c", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "keep_dailyy" in r.stdout + r.stderr


def test_maintenance_cronjob_args_work(tmp_path, prod):
    """Prune then check, with the rendered arguments run against a real (local)
    repository: the flags must be ones tapwork accepts."""
    spec = cronjob(prod[0], "backup-maintenance")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert cronjob(prod[0], "backup-maintenance")["spec"]["concurrencyPolicy"] == "Forbid"
    prune, check = spec["initContainers"][0], spec["containers"][0]
    assert prune["args"][0] == "prune" and check["args"][0] == "check"
    job = config_of(prod[0])["backup"]["jobs"]["nightly"]
    pw = tmp_path / "password"
    pw.write_text("test-password\n")
    repo = tmp_path / "repo"
    env = dict(os.environ, TAPWORK_PASSWORD_FILE=str(pw))
    env.pop("TAPWORK_PASSWORD", None)
    r = subprocess.run([BIN, "repo", "init", "-r", str(repo)], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    env.pop("TAPWORK_PASSWORD_FILE")
    for c in (prune, check):
        args = [str(repo) if a == job["repository"] else str(pw) if a == job["password_file"] else a
                for a in c["args"]]
        assert str(repo) in args and str(pw) in args, c["args"]
        r = subprocess.run([BIN] + args, env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (args, r.stdout + r.stderr)
    # schedule "" turns it off
    docs, _ = render(PREFIX, "-f", PROD, "--set", "backup.maintenance.schedule=")
    assert len(by_kind(docs, "CronJob")) == 1


# Ingress-controller mode (ingressController.*, docs/kubernetes.md).
def render_values(text, check=True):
    """Render with a values file holding `text`."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(text)
        f.flush()
        return render(PREFIX, "-f", f.name, check=check)


def rbac_grants(role):
    """Every (apiGroup, resource, verb, resourceNames) a Role/ClusterRole grants."""
    out = set()
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}, rule
        for g in rule["apiGroups"]:
            for res in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((g, res, verb, tuple(rule.get("resourceNames", ()))))
    return out


def test_ingress_controller_config_section(ingress):
    docs, _ = ingress
    k8s = config_of(docs)["kubernetes"]
    assert "api" not in k8s                    # in cluster: service-account token + CA
    assert k8s["ingress"] == {
        "class": "tapwork", "controller": "tapwork.dev/ingress-controller",
        "watch_without_class": False, "namespaces": [],
        "publish_service": "default/" + one(docs, "ConfigMap")["metadata"]["name"],
        "external_name": False}
    # publish_service is the chart's own load-balancer Service
    lb = [s for s in by_kind(docs, "Service") if s["spec"]["type"] == "LoadBalancer"]
    assert k8s["ingress"]["publish_service"] == "default/" + lb[0]["metadata"]["name"]
    role = one(docs, "Role")
    lease = [r["resourceNames"] for r in role["rules"] if "resourceNames" in r][0]
    assert k8s["leader_election"] == {"lease": lease[0], "namespace": role["metadata"]["namespace"],
                                      "duration": "15s"}
    assert "identity" not in k8s["leader_election"]   # defaults to $POD_NAME
    # the IngressClass the controller claims is the one the chart creates
    ic = one(docs, "IngressClass")
    assert ic["apiVersion"] == "networking.k8s.io/v1"
    assert ic["metadata"]["name"] == k8s["ingress"]["class"]
    assert ic["spec"]["controller"] == k8s["ingress"]["controller"]
    assert "ingressclass.kubernetes.io/is-default-class" not in ic["metadata"].get("annotations", {})
    # a config change rolls the pods
    assert checksum(docs) != checksum(render(PREFIX)[0])


def test_ingress_controller_rbac_is_exact(ingress):
    docs, _ = ingress
    sa = one(docs, "ServiceAccount")["metadata"]["name"]
    cr = one(docs, "ClusterRole")
    read = {"get", "list", "watch"}
    expected = {("networking.k8s.io", r, v, ()) for r in ("ingresses", "ingressclasses") for v in read}
    expected |= {("", r, v, ()) for r in ("services", "secrets") for v in read}
    expected |= {("discovery.k8s.io", "endpointslices", v, ()) for v in read}
    expected |= {("networking.k8s.io", "ingresses/status", v, ()) for v in ("update", "patch")}
    expected |= {(g, "events", v, ()) for g in ("", "events.k8s.io") for v in ("create", "patch")}
    assert rbac_grants(cr) == expected
    crb = one(docs, "ClusterRoleBinding")
    assert crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                              "name": cr["metadata"]["name"]}
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": "default"}]

    role = one(docs, "Role")
    assert role["metadata"]["namespace"] == "default"
    lease = config_of(docs)["kubernetes"]["leader_election"]["lease"]
    # create cannot be limited by resourceNames; get and update are, to the one Lease
    assert rbac_grants(role) == {("coordination.k8s.io", "leases", "create", ()),
                                 ("coordination.k8s.io", "leases", "get", (lease,)),
                                 ("coordination.k8s.io", "leases", "update", (lease,))}
    rb = one(docs, "RoleBinding")
    assert rb["metadata"]["namespace"] == "default"
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                             "name": role["metadata"]["name"]}
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": "default"}]
    # least privilege, said plainly: no wildcard, no Secret written, nothing
    # written but Ingress status, Events and the Lease
    for g, res, verb, _ in rbac_grants(cr) | rbac_grants(role):
        assert "*" not in (g, res, verb)
        if verb not in read:
            assert res in ("ingresses/status", "events", "leases"), (g, res, verb)
    # rbac.create false: bring your own
    f = yaml.safe_dump({"ingressController": {"enabled": True}, "rbac": {"create": False}})
    assert not [d for d in render_values(f)[0] if d["kind"].endswith(("Role", "RoleBinding"))]


def test_ingress_controller_pod_identity_and_token(ingress):
    docs, _ = ingress
    spec = pod_spec(docs)
    assert spec["automountServiceAccountToken"] is True
    sa = one(docs, "ServiceAccount")
    assert sa["automountServiceAccountToken"] is True
    assert spec["serviceAccountName"] == sa["metadata"]["name"]
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


INGRESS_OPTIONS = {
    "ingressController": {
        "enabled": True, "class": "edge", "defaultClass": True,
        "controllerName": "example.com/edge", "watchWithoutClass": True,
        "namespaces": ["web", "api"], "defaultBackend": "app",
        "publishAddress": ["203.0.113.7", "edge.example.test"], "externalName": True,
        "leaseDuration": "20s"},
    "config": {"sites": [{"hosts": ["*"], "routes": [{"path": "/", "handler": "welcome"}]}],
               "backends": {"app": {"servers": ["127.0.0.1:3000"]}}},
}


def test_ingress_controller_options():
    docs, _ = render_values(yaml.safe_dump(INGRESS_OPTIONS))
    ing = config_of(docs)["kubernetes"]["ingress"]
    assert ing == {"class": "edge", "controller": "example.com/edge", "watch_without_class": True,
                   "namespaces": ["web", "api"], "default_backend": "app",
                   "publish_address": ["203.0.113.7", "edge.example.test"],   # instead of the Service
                   "external_name": True}
    assert config_of(docs)["kubernetes"]["leader_election"]["duration"] == "20s"
    ic = one(docs, "IngressClass")
    assert ic["metadata"]["name"] == "edge" and ic["spec"]["controller"] == "example.com/edge"
    assert ic["metadata"]["annotations"] == {"ingressclass.kubernetes.io/is-default-class": "true"}
    # a default backend that config.backends does not define is refused at render
    bad = dict(INGRESS_OPTIONS, ingressController=dict(INGRESS_OPTIONS["ingressController"],
                                                       defaultBackend="nope"))
    r = render_values(yaml.safe_dump(bad), check=False)
    assert r.returncode != 0 and "defaultBackend" in r.stderr


def test_ingress_controller_values_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.load(open(os.path.join(CHART, "values.schema.json")))
    values = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))
    assert values["ingressController"]["enabled"] is False
    ic = INGRESS_OPTIONS["ingressController"]
    jsonschema.validate(dict(values, ingressController=ic,
                             config=dict(values["config"], **INGRESS_OPTIONS["config"])), schema)
    for b in ({"class": "Not A Name"}, {"namespaces": ["Web"]}, {"controllerName": "tapwork"},
              {"leaseDuration": "soon"}, {"watchNamespace": "web"}, {"publishAddress": [""]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(dict(values, ingressController=dict(ic, **b)), schema)


def test_tapwork_validates_ingress_controller_config(tmp_path, ingress):
    """`tapwork validate` accepts the kubernetes: section the chart renders,
    with the defaults and with every option, and rejects a misspelt key in it.
    Needs a tapwork built with the kubernetes: config schema (issue 11)."""
    r = validate_config(tmp_path, ingress[0])
    assert r.returncode == 0, r.stdout + r.stderr
    docs, _ = render_values(yaml.safe_dump(INGRESS_OPTIONS))
    r = validate_config(tmp_path, docs)
    assert r.returncode == 0, r.stdout + r.stderr
    bad = one(docs, "ConfigMap")["data"]["tapwork.yaml"].replace("watch_without_class",
                                                                  "watch_without_klass")
    f = tmp_path / "bad.yaml"
    f.write_text(bad)
    r = subprocess.run([BIN, "validate", "-c", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "watch_without_klass" in r.stdout + r.stderr
