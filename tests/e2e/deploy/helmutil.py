"""Render the Helm chart with real `helm template` or chart-render; find k8s-validate.

Neither tool ships with tapwork: helm where it is installed, else the
chart-render and k8s-validate tools of the machine (paths from
TAPWORK_CHART_RENDER / TAPWORK_K8S_VALIDATE, default ../shared/tools/...).
Tests skip with the reason when none is found."""
import os
import shutil
import subprocess

import pytest

from conftest import ROOT

yaml = pytest.importorskip("yaml", reason="python3-yaml not installed")

CHART = os.path.join(ROOT, "deploy", "helm", "tapwork")
EXAMPLES = os.path.join(ROOT, "deploy", "helm", "examples")
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "tools")


def _tool(env, *candidates):
    p = os.environ.get(env)
    if p:
        return p if os.access(p, os.X_OK) else None
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    return None


def renderer():
    """(argv prefix, name) of a chart renderer, or (None, reason)."""
    helm = shutil.which("helm")
    if helm and not os.environ.get("TAPWORK_CHART_RENDER"):
        return [helm, "template", "tapwork"], "helm"
    cr = _tool("TAPWORK_CHART_RENDER", "/work/shared/tools/chart-render/chart-render",
               os.path.join(SHARED, "chart-render", "chart-render"))
    if cr:
        return [cr, "--name", "tapwork"], "chart-render"
    return None, ("no helm binary and no chart-render "
                  "(set TAPWORK_CHART_RENDER to ../shared/tools/chart-render/chart-render)")


def validator():
    return _tool("TAPWORK_K8S_VALIDATE", "/work/shared/tools/k8s-validate/k8s-validate",
                 os.path.join(SHARED, "k8s-validate", "k8s-validate"))


def render(prefix, *args, check=True):
    """Rendered documents (list of dicts); args are -f FILE / --set k=v."""
    r = subprocess.run(prefix + list(args) + [CHART], capture_output=True, text=True, timeout=300)
    if not check:
        return r
    assert r.returncode == 0, r.stderr
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    docs_text = r.stdout
    return docs, docs_text


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def one(docs, kind):
    found = by_kind(docs, kind)
    assert len(found) == 1, f"{len(found)} {kind} documents"
    return found[0]
