#!/usr/bin/python3
"""A test Kubernetes API server for tapwork's Kubernetes mode (stdlib + openssl CLI).

It speaks the real API protocol over HTTPS on loopback so that real clients
(kubectl 1.32, python3-kubernetes, tapwork's C client) can be pointed at it:
discovery, list with paging and selectors, watch with bookmarks and timeouts,
create / replace / patch / delete with optimistic concurrency, the status
subresource, 401 / 409 / 410 Status objects.  Tests drive it and inject
faults through a control API.

Starting it
-----------
In-process (pytest; the server runs in threads of the test process)::

    from apiserver import ApiServer
    api = ApiServer(tokens=["t0k3n"], workdir=tmp_path)   # makes a CA + cert with openssl
    api.start()                       # listens on 127.0.0.1:<free port>  (port=P to choose)
    api.write_kubeconfig(tmp_path / "kubeconfig")   # server, CA data, token, current-context
    env = api.write_incluster(tmp_path / "sa")     # token, ca.crt, namespace + KUBERNETES_SERVICE_* env
    ...
    api.stop()

  or use the `apiserver` pytest fixture from k8sutil.py (started per test,
  stopped at teardown, kubeconfig at api.kubeconfig).

As a subprocess::

    /usr/bin/python3 tests/e2e/k8s/apiserver.py --port P --token T \
        [--token T2 ...] [--control-token C] [--write-kubeconfig PATH] \
        [--write-incluster DIR] [--fixtures DIR_OR_FILE ...] [--workdir DIR] [--gateway-api] \
        [--bookmark-interval S] [--watch-timeout S] [--split-chunks]

  --port 0 picks a free port.  When it listens it prints one line
  "READY https://127.0.0.1:PORT" on stdout (and flushes).  SIGTERM / SIGINT
  stop it.  Fixture files are YAML or JSON (multi-document, or a v1 List).

Out-of-process control: POST https://127.0.0.1:PORT/_test/call with
"Authorization: Bearer <control token>" (default: the first --token; it
keeps working when the API tokens are rotated) and a JSON body
{"method": NAME, "args": [...], "kwargs": {...}}; the answer is
{"result": ...}.  NAME is any method listed in CONTROL_METHODS below, e.g.
  {"method": "set_tokens", "args": [["new"]]}
  {"method": "compact"}                       -> {"result": <rv>}
  {"method": "down_for", "args": [2.0]}       (refuses connections for 2 s)
  {"method": "error_status", "args": [503], "kwargs": {"retry_after": 1, "count": 2}}
  {"method": "requests", "kwargs": {"method": "PUT"}}   -> the request log
  {"method": "create", "args": [{...object...}]}
GET /_test/log returns the request log too.  k8sutil.start_apiserver_process()
starts one and returns a RemoteApiServer whose methods are these calls.

Control API (ApiServer methods; all thread-safe)
------------------------------------------------
Objects are plain dicts (apiVersion, kind, metadata, ...).  `kind` arguments
accept a Kind ("Ingress"), a plural ("ingresses"), a short name ("ing") or
"group/version/Kind".
  create(obj)                     -> stored copy; ApiError 409 if it exists.  Unlike
                                  a POST, keeps metadata.uid / creationTimestamp when
                                  given (fixtures can fix the age order of conflicts)
  apply(obj)                      create or replace (no resourceVersion check)
  update(obj)                     replace; 409 ApiError if metadata.resourceVersion is stale
  patch(kind, name, patch, namespace=None, subresource=None)   JSON merge patch
  set_status(kind, name, status, namespace=None)
  delete(kind, name, namespace=None)  -> deleted object or None
  get(kind, name, namespace=None) -> copy or None
  list(kind, namespace=None)      -> list of copies
  load_fixtures(path)             file or directory of YAML/JSON
  resource_version                current global resourceVersion (int)
  compact(rv=None, break_watches=False)  forget history up to rv (default: now);
                                  list/watch from older rvs then answer 410
  break_watches(gone=False, clean=False)  end every open watch: cut the
                                  connection, or end the stream cleanly, or
                                  send an ERROR 410 event first
  set_tokens(tokens) / add_token(t) / remove_token(t)
  go_down() / come_up() / down_for(seconds)   stop listening (and cut every
                                  open connection), listen again on the same port
  garbage(count=1, path=None)     next N API requests get 200 with non-JSON
  error_status(code, retry_after=None, count=1, path=None, message=None)
                                  next N get a Status with that code (+ Retry-After)
  delay(seconds, count=1, path=None)
                                  each also takes method="PUT" / watch=True|False
                                  to pick which requests it hits
  clear_faults()
  requests(method=None, path=None, watch=None) / clear_requests()
                                  the request log: dicts with method, path, query
                                  (dict of first values), rawquery, status, token,
                                  content_type, time
  wait_requests(pred, timeout)    wait until a logged request matches pred
  open_watches()                  number of watch streams being served
  add_resources(resources)        extend the resource table (see GATEWAY_API)
  set_option(name, value)         set one of the attributes below (for /_test/call)
Attributes settable at run time: split_chunks (bool: watch lines cut across
HTTP chunks at random byte offsets), bookmark_interval (seconds, default 1),
gone_as ("event": 200 then an ERROR event, as the real apiserver does for a
watch; "status": HTTP 410 Status), watch_timeout (default server-side watch
duration when the client gives no timeoutSeconds or 0; default 1800 s),
max_history (events kept for watches; older ones are compacted away),
aggregated_discovery (default True: /api and /apis answer an
apidiscovery.k8s.io/v2 APIGroupDiscoveryList when the Accept header asks for
one, as kubectl 1.32 does; False: only the legacy documents, and clients fall
back to /api/v1, /apis/G/V), gzip_min (answers other than watches of at least
this many bytes are gzipped when the request has Accept-Encoding: gzip, as the
real apiserver does above 128 KiB; None: never).

Protocol notes (what a client can rely on, as in a real apiserver)
------------------------------------------------------------------
* resourceVersions are decimal strings of one global counter.
* list: items carry no apiVersion/kind; metadata.resourceVersion is the list's
  rv; limit/continue paging serves a consistent snapshot (410 once the
  continue token's rv is compacted); resourceVersionMatch=Exact also needs an
  uncompacted rv; otherwise the current state is served.
* watch: resourceVersion unset or "0" sends the current objects as ADDED
  first; "N" sends the events after N (410 when N is older than the
  compaction point).  One JSON event per line, chunked.  BOOKMARK events
  (allowWatchBookmarks=true) every bookmark_interval and just before the
  server ends the stream at timeoutSeconds.  sendInitialEvents=true ends the
  initial ADDED events with a bookmark annotated k8s.io/initial-events-end.
* Writes through the API are validated for what an Ingress controller leans on
  (object names; Ingress paths, pathTypes, hosts and backends; IngressClass
  controller; EndpointSlice addressType / addresses; Lease duration) and get
  422 Invalid with causes.  The control API stores objects unchecked, so a
  test can still hold what a real server would refuse.
* Selectors: labelSelector (=, ==, !=, exists, !key, in, notin) and
  fieldSelector (metadata.name, metadata.namespace, plus per-resource fields
  such as type for secrets); with selectors a watch turns an object leaving
  the selection into DELETED and one entering it into ADDED.
* Large answers are gzipped when asked for (see gzip_min); HTTP/1.1
  keep-alive; Expect: 100-continue is answered.

The resource table is CORE (+ GATEWAY_API): one Resource(group, version,
plural, Kind, namespaced=, short=, subresources=, fields=) row per kind; a
new row is all it takes to serve another kind (list, watch, CRUD, discovery).

Not faithful (on purpose, or not yet)
-------------------------------------
* HTTP/1.1 only (ALPN offers http/1.1; no HTTP/2), JSON only (no protobuf,
  no CBOR), no Table answers: kubectl's human output falls back to NAME/AGE.
* No authorization: any valid token may do anything (403 only when injected).
* No defaulting (no clusterIP allocation, no managedFields), no finalizers or
  graceful deletion (deletionTimestamp is never set), no garbage collection,
  namespaces are made on first use and deleting one leaves its objects.
  metadata.generation is kept for every kind (bumped when anything outside
  metadata/status changes).
* Validation covers only what is listed above; fieldValidation=Strict is
  accepted and unknown fields are stored as given.
* Strategic merge patch is a JSON merge patch that drops "$..." directives
  (lists are replaced whole); server-side apply (apply-patch+yaml) is a merge
  too, with no field managers and no conflicts.
* OpenAPI: /openapi/v3 has only the PATCH operations (with their
  fieldValidation parameter, which is what kubectl apply/create check), no
  schemas (kubectl explain fails); /openapi/v2 is 404.
* A list with resourceVersion=N newer than the current one is served at
  once (a real server waits up to ~3 s, then 504); limit is honoured with
  resourceVersion=0 too.
* History, objects and the request log live in memory without bounds other
  than max_history.
"""
import argparse
import base64
import copy
import datetime
import gzip
import json
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# ---------------------------------------------------------------------------
# The resource table

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


class Resource:
    """One served resource: where it lives in the API and how it behaves."""

    def __init__(self, group, version, plural, kind, namespaced=True, short=(),
                 subresources=(), fields=(), verbs=VERBS, singular=None):
        self.group, self.version, self.plural, self.kind = group, version, plural, kind
        self.namespaced = namespaced
        self.short = list(short)
        self.subresources = tuple(subresources)
        self.fields = ("metadata.name", "metadata.namespace") + tuple(fields)
        self.verbs = list(verbs)
        self.singular = singular or kind.lower()

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def gv(self):
        return (self.group, self.version)

    @property
    def key(self):
        return (self.group, self.plural)

    def qualified(self):
        return f"{self.plural}.{self.group}" if self.group else self.plural


CORE = [
    Resource("", "v1", "namespaces", "Namespace", namespaced=False, short=["ns"],
             subresources=("status",), fields=("status.phase",)),
    Resource("", "v1", "services", "Service", short=["svc"], subresources=("status",),
             fields=("spec.clusterIP", "spec.type")),
    Resource("", "v1", "secrets", "Secret", fields=("type",)),
    Resource("", "v1", "configmaps", "ConfigMap", short=["cm"]),
    Resource("", "v1", "events", "Event", short=["ev"],
             fields=("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                     "involvedObject.uid", "involvedObject.apiVersion", "reason", "type",
                     "source", "reportingComponent")),
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
    Resource("networking.k8s.io", "v1", "ingresses", "Ingress", short=["ing"],
             subresources=("status",)),
    Resource("networking.k8s.io", "v1", "ingressclasses", "IngressClass", namespaced=False),
    Resource("coordination.k8s.io", "v1", "leases", "Lease"),
]

# Gateway API (a CRD in real clusters): ApiServer(gateway_api=True) or --gateway-api.
GATEWAY_API = [
    Resource("gateway.networking.k8s.io", "v1", "gatewayclasses", "GatewayClass",
             namespaced=False, short=["gc"], subresources=("status",)),
    Resource("gateway.networking.k8s.io", "v1", "gateways", "Gateway", short=["gtw"],
             subresources=("status",)),
    Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute",
             subresources=("status",)),
    Resource("gateway.networking.k8s.io", "v1beta1", "referencegrants", "ReferenceGrant",
             short=["refgrant"]),
]

AGGREGATED = "g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

# Methods callable through POST /_test/call.
CONTROL_METHODS = {
    "create", "apply", "update", "patch", "set_status", "delete", "get", "list",
    "load_fixtures", "compact", "break_watches", "set_tokens", "add_token", "remove_token",
    "down_for", "garbage", "error_status", "delay", "clear_faults", "requests",
    "clear_requests", "open_watches", "set_option", "current_rv",
}
OPTIONS = {"split_chunks", "bookmark_interval", "gone_as", "watch_timeout", "max_history",
           "aggregated_discovery", "gzip_min"}


class ApiError(Exception):
    """An API failure carried as a Kubernetes Status object."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(f"{code} {reason}: {message}")
        self.code, self.reason, self.message = code, reason, message
        self.details = details
        self.headers = headers or {}

    def status(self):
        s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            s["details"] = self.details
        return s


def status_object(code, reason, message, details=None):
    return ApiError(code, reason, message, details).status()


REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType",
           422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
           503: "ServiceUnavailable", 504: "Timeout"}


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def not_found(res, name):
    return ApiError(404, "NotFound", f'{res.qualified()} "{name}" not found',
                    {"name": name, "group": res.group, "kind": res.plural})


def conflict(res, name):
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {res.qualified()} "{name}": the object '
                    f"has been modified; please apply your changes to the latest version and "
                    f"try again", {"name": name, "group": res.group, "kind": res.plural})


def expired(message):
    return ApiError(410, "Expired", message)


# ---------------------------------------------------------------------------
# Selectors

def _split_top(s):
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


_SET_RE = re.compile(r"^([A-Za-z0-9_./-]+)\s+(in|notin)\s+\((.*)\)$")


def parse_label_selector(s):
    """A list of predicates on a labels dict; ApiError 400 when malformed."""
    preds = []
    for term in _split_top(s or ""):
        m = _SET_RE.match(term)
        if m:
            key, op, vals = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                preds.append(lambda L, k=key, v=vals: k in L and L[k] in v)
            else:
                preds.append(lambda L, k=key, v=vals: k not in L or L[k] not in v)
            continue
        for op in ("!=", "==", "="):
            if op in term:
                key, val = (x.strip() for x in term.split(op, 1))
                if not key:
                    raise ApiError(400, "BadRequest", f"unable to parse requirement: {term}")
                if op == "!=":
                    preds.append(lambda L, k=key, v=val: L.get(k) != v)
                else:
                    preds.append(lambda L, k=key, v=val: L.get(k) == v)
                break
        else:
            if term.startswith("!"):
                preds.append(lambda L, k=term[1:].strip(): k not in L)
            elif re.match(r"^[A-Za-z0-9_./-]+$", term):
                preds.append(lambda L, k=term: k in L)
            else:
                raise ApiError(400, "BadRequest", f"unable to parse requirement: {term}")
    return preds


def _field_value(obj, path):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part, "")
    if isinstance(cur, dict):
        return ""
    return "" if cur is None else str(cur)


def parse_field_selector(s, res):
    preds = []
    for term in _split_top(s or ""):
        for op in ("!=", "==", "="):
            if op in term:
                key, val = (x.strip() for x in term.split(op, 1))
                break
        else:
            raise ApiError(400, "BadRequest", f"invalid selector: '{term}'; can't understand '{term}'")
        if key not in res.fields:
            raise ApiError(400, "BadRequest",
                           f'field label not supported: {key}')
        if op == "!=":
            preds.append(lambda o, k=key, v=val: _field_value(o, k) != v)
        else:
            preds.append(lambda o, k=key, v=val: _field_value(o, k) == v)
    return preds


class Selection:
    def __init__(self, res, namespace, label_selector, field_selector):
        self.namespace = namespace
        self.labels = parse_label_selector(label_selector)
        self.fields = parse_field_selector(field_selector, res)
        self.empty = not self.labels and not self.fields

    def match(self, obj):
        if obj is None:
            return False
        md = obj.get("metadata", {})
        if self.namespace is not None and md.get("namespace") != self.namespace:
            return False
        labels = md.get("labels") or {}
        return all(p(labels) for p in self.labels) and all(p(obj) for p in self.fields)


# ---------------------------------------------------------------------------
# Patches

def merge_patch(target, patch, strategic=False):
    """RFC 7386 JSON merge patch; strategic=True drops "$..." directives and
    honours {"$patch": "delete"/"replace"} in maps (lists are replaced whole)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if strategic and patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if strategic and k.startswith("$"):
            continue
        if v is None:
            out.pop(k, None)
        elif strategic and isinstance(v, dict) and v.get("$patch") == "delete":
            out.pop(k, None)
        elif isinstance(v, dict):
            out[k] = merge_patch(out.get(k), v, strategic)
        elif strategic and isinstance(v, list):
            out[k] = [merge_patch({}, x, True) if isinstance(x, dict) else x
                      for x in v if not (isinstance(x, dict) and x.get("$patch") == "delete")]
        else:
            out[k] = copy.deepcopy(v)
    return out


def _pointer(path):
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(doc, ops):
    """RFC 6902 JSON patch (add, remove, replace, test, move, copy)."""
    doc = copy.deepcopy(doc)

    def walk(path):
        parts = _pointer(path)
        cur = doc
        for p in parts[:-1]:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        return cur, parts[-1]

    def get(path):
        cur = doc
        for p in _pointer(path):
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        return cur

    def add(path, value):
        parent, last = walk(path)
        if isinstance(parent, list):
            parent.insert(len(parent) if last == "-" else int(last), value)
        else:
            parent[last] = value

    def remove(path):
        parent, last = walk(path)
        if isinstance(parent, list):
            return parent.pop(int(last))
        return parent.pop(last)

    try:
        for op in ops:
            kind, path = op["op"], op["path"]
            if kind == "add":
                add(path, copy.deepcopy(op["value"]))
            elif kind == "remove":
                remove(path)
            elif kind == "replace":
                remove(path)
                add(path, copy.deepcopy(op["value"]))
            elif kind == "test":
                if get(path) != op["value"]:
                    raise ApiError(422, "Invalid", f"the server rejected our request due to an "
                                   f"error in our request: test failed at {path}")
            elif kind == "move":
                add(path, remove(op["from"]))
            elif kind == "copy":
                add(path, copy.deepcopy(get(op["from"])))
            else:
                raise ApiError(400, "BadRequest", f"unknown json patch op {kind}")
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise ApiError(422, "Invalid", f"the server rejected our request due to an error in "
                       f"our request: {e!r}")
    return doc


# ---------------------------------------------------------------------------
# Validation: the part of the real apiserver's that an Ingress controller could
# otherwise be tested against objects no cluster would hold.  Applied to writes
# through the API; the control API (fixtures) stores objects unchecked.

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_IP = re.compile(r"^[0-9.]+$|:")


def _subdomain_error(v):
    if not v or len(v) > 253 or not all(_DNS1123_LABEL.match(x) for x in v.split(".")):
        return ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                "'-' or '.', and must start and end with an alphanumeric character")
    return None


def _host_errors(field, host, out):
    h = host[2:] if host.startswith("*.") else host
    if _IP.search(h):
        out.append((field, "FieldValueInvalid", f'Invalid value: "{host}": must be a DNS name, not an IP address'))
    elif _subdomain_error(h):
        msg = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain"
               if "*" in host else _subdomain_error(h))
        out.append((field, "FieldValueInvalid", f'Invalid value: "{host}": {msg}'))


def _backend_errors(field, b, out):
    svc, other = b.get("service"), b.get("resource")
    if bool(svc) == bool(other):
        out.append((field, "FieldValueInvalid", "Invalid value: \"\": cannot set both or neither "
                    "of service and resource backend"))
        return
    if svc:
        if not svc.get("name"):
            out.append((f"{field}.service.name", "FieldValueRequired", "Required value"))
        port = svc.get("port") or {}
        if ("name" in port) == ("number" in port):
            out.append((f"{field}.service.port", "FieldValueInvalid",
                        "Invalid value: \"\": cannot set both port name & port number"
                        if port else "Required value"))
        elif "number" in port and not (isinstance(port["number"], int) and 0 < port["number"] < 65536):
            out.append((f"{field}.service.port.number", "FieldValueInvalid",
                        f"Invalid value: {port['number']}: must be between 1 and 65535, inclusive"))


def _validate_ingress(obj, out):
    spec = obj.get("spec") or {}
    if not spec.get("rules") and not spec.get("defaultBackend"):
        out.append(("spec", "FieldValueInvalid",
                    "Invalid value: \"\": either `defaultBackend` or `rules` must be specified"))
    if spec.get("defaultBackend"):
        _backend_errors("spec.defaultBackend", spec["defaultBackend"], out)
    if spec.get("ingressClassName") is not None and _subdomain_error(spec["ingressClassName"]):
        out.append(("spec.ingressClassName", "FieldValueInvalid",
                    f'Invalid value: "{spec["ingressClassName"]}": {_subdomain_error(spec["ingressClassName"])}'))
    for i, t in enumerate(spec.get("tls") or []):
        for j, h in enumerate(t.get("hosts") or []):
            _host_errors(f"spec.tls[{i}].hosts[{j}]", h, out)
    for i, r in enumerate(spec.get("rules") or []):
        f = f"spec.rules[{i}]"
        if r.get("host"):
            _host_errors(f"{f}.host", r["host"], out)
        if "http" in r:
            paths = (r["http"] or {}).get("paths") or []
            if not paths:
                out.append((f"{f}.http.paths", "FieldValueRequired", "Required value"))
            for j, p in enumerate(paths):
                pf = f"{f}.http.paths[{j}]"
                pt = p.get("pathType")
                if not pt:
                    out.append((f"{pf}.pathType", "FieldValueRequired", "Required value: pathType must be specified"))
                elif pt not in ("Exact", "Prefix", "ImplementationSpecific"):
                    out.append((f"{pf}.pathType", "FieldValueNotSupported", f'Unsupported value: "{pt}": supported '
                                'values: "Exact", "ImplementationSpecific", "Prefix"'))
                elif pt in ("Exact", "Prefix") and not str(p.get("path", "")).startswith("/"):
                    out.append((f"{pf}.path", "FieldValueInvalid",
                                f'Invalid value: "{p.get("path", "")}": must be an absolute path'))
                _backend_errors(f"{pf}.backend", p.get("backend") or {}, out)


def _validate_ingressclass(obj, out):
    c = (obj.get("spec") or {}).get("controller")
    if not c:
        out.append(("spec.controller", "FieldValueRequired", "Required value"))
    elif "/" not in c or _subdomain_error(c.split("/", 1)[0]):
        out.append(("spec.controller", "FieldValueInvalid",
                    f'Invalid value: "{c}": must be a domain-prefixed path (such as "acme.io/foo")'))


def _validate_endpointslice(obj, out):
    at = obj.get("addressType")
    if not at:
        out.append(("addressType", "FieldValueRequired", "Required value"))
    elif at not in ("IPv4", "IPv6", "FQDN"):
        out.append(("addressType", "FieldValueNotSupported",
                    f'Unsupported value: "{at}": supported values: "FQDN", "IPv4", "IPv6"'))
    for i, e in enumerate(obj.get("endpoints") or []):
        n = len(e.get("addresses") or [])
        if not 1 <= n <= 100:
            out.append((f"endpoints[{i}].addresses", "FieldValueRequired" if n == 0 else "FieldValueTooMany",
                        "Required value: must contain at least 1 address" if n == 0 else
                        f"Too many: {n}: must have at most 100 items"))


def _validate_lease(obj, out):
    d = (obj.get("spec") or {}).get("leaseDurationSeconds")
    if d is not None and (not isinstance(d, int) or d <= 0):
        out.append(("spec.leaseDurationSeconds", "FieldValueInvalid", f"Invalid value: {d}: must be greater than 0"))


VALIDATORS = {"Ingress": _validate_ingress, "IngressClass": _validate_ingressclass,
              "EndpointSlice": _validate_endpointslice, "Lease": _validate_lease}


def validate(res, obj):
    """ApiError 422 Invalid (with causes, as the real apiserver words them) or None."""
    name = obj.get("metadata", {}).get("name", "")
    out = []
    err = _subdomain_error(name)
    if err and res.kind != "Event":
        out.append(("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {err}'))
    if res.kind in VALIDATORS:
        VALIDATORS[res.kind](obj, out)
    if not out:
        return
    texts = [f"{f}: {m}" for f, _, m in out]
    what = f"{res.kind}.{res.group}" if res.group else res.kind
    raise ApiError(422, "Invalid", f'{what} "{name}" is invalid: ' +
                   (texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"),
                   {"name": name, "group": res.group, "kind": res.kind,
                    "causes": [{"reason": r, "message": m, "field": f} for f, r, m in out]})


# ---------------------------------------------------------------------------
# TLS material

def make_tls(d):
    """A CA and a server certificate for 127.0.0.1 / localhost / ::1 in d (openssl CLI)."""
    d = str(d)

    def ossl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=30)

    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "ca.key", "-out", "ca.crt", "-days", "3", "-subj", "/CN=tapwork test apiserver CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kube-apiserver")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:kubernetes.default.svc\n"
                "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext")
    return (os.path.join(d, "ca.crt"), os.path.join(d, "server.crt"), os.path.join(d, "server.key"))


# ---------------------------------------------------------------------------
# The server

class _Watch:
    def __init__(self):
        self.pos = None           # the rv this watch has delivered up to
        self.stop = None          # None, "close" (cut), "end" (clean end) or "gone" (410 event)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, api, addr):
        self.api = api
        super().__init__(addr, _Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = self.api._ssl.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return tls, addr

    def handle_error(self, request, client_address):
        pass  # clients that go away mid-request are normal here


class ApiServer:
    def __init__(self, tokens=("test-token",), port=0, workdir=None, control_token=None,
                 gateway_api=False, bookmark_interval=1.0, split_chunks=False,
                 watch_timeout=1800.0, host="127.0.0.1"):
        self.tokens = set(tokens)
        self.default_token = list(tokens)[0] if tokens else None
        self.control_token = control_token or (list(tokens)[0] if tokens else "control")
        self.host, self.port = host, port
        self._own_workdir = workdir is None
        self.workdir = str(workdir or tempfile.mkdtemp(prefix="k8s-apiserver-"))
        os.makedirs(self.workdir, exist_ok=True)
        self.split_chunks = split_chunks
        self.bookmark_interval = bookmark_interval
        self.gone_as = "event"
        self.watch_timeout = watch_timeout
        self.max_history = 100000
        self.aggregated_discovery = True
        self.gzip_min = 128 * 1024
        self.kubeconfig = None

        self.cond = threading.Condition(threading.RLock())
        self.rv = 1
        self.compacted = 0
        self.history = []          # (rv, res.key, type, obj, prev)
        self.store = {}            # res.key -> {(ns, name): obj}
        self.resources = []
        self.add_resources(CORE)
        if gateway_api:
            self.add_resources(GATEWAY_API)
        self.log = []
        self.faults = []           # dicts: kind, count, path, ...
        self._watches = set()
        self._conns = set()
        self._server = None
        self._thread = None
        self._down_timer = None
        self.ca, self.cert, self.key = make_tls(self.workdir)
        with open(self.ca, "rb") as f:
            self.ca_pem = f.read()
        self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ssl.load_cert_chain(self.cert, self.key)
        self._ssl.set_alpn_protocols(["http/1.1"])
        for ns in ("default", "kube-system"):
            self._ensure_namespace(ns)

    # -- lifecycle --------------------------------------------------------
    @property
    def url(self):
        return f"https://{self.host}:{self.port}"

    def start(self):
        self.come_up()
        return self

    def come_up(self):
        """Listen (again, on the same port)."""
        with self.cond:
            if self._server is not None:
                return
            srv = _HTTPServer(self, (self.host, self.port))
            self.port = srv.server_address[1]
            self._server = srv
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"apiserver-{self.port}", daemon=True)
        self._thread.start()

    def go_down(self):
        """Stop listening and cut every open connection (watches included)."""
        with self.cond:
            srv, self._server = self._server, None
            for w in list(self._watches):
                w.stop = "close"
            conns = list(self._conns)
            self.cond.notify_all()
        if srv is None:
            return
        srv.shutdown()
        srv.server_close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread:
            self._thread.join(5)

    def down_for(self, seconds):
        """go_down() in a moment (so a control request gets its answer first),
        come_up() `seconds` later; usable through /_test/call."""
        def run():
            time.sleep(0.05)
            self.go_down()
            time.sleep(seconds)
            self.come_up()
        self._down_timer = threading.Thread(target=run, daemon=True)
        self._down_timer.start()

    def stop(self):
        self.go_down()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def set_option(self, name, value):
        if name not in OPTIONS:
            raise ValueError(f"unknown option {name}")
        setattr(self, name, value)

    # -- kubeconfig -------------------------------------------------------
    def write_kubeconfig(self, path, token=None, ca=True, token_file=None, namespace="default"):
        """A kubeconfig (block-style YAML) for this server: cluster "test" with
        server https://127.0.0.1:PORT and certificate-authority-data (ca=False
        leaves the CA out), user "test" with `token` (default: the first token
        given) or, with token_file, `tokenFile: PATH` instead; current-context "test"."""
        ca_line = (f"    certificate-authority-data: {base64.b64encode(self.ca_pem).decode()}\n" if ca else "")
        if token_file:
            user = f"    tokenFile: {json.dumps(str(token_file))}\n"
        else:
            user = f"    token: {json.dumps(token or self.default_token or sorted(self.tokens)[0])}\n"
        text = ("apiVersion: v1\nkind: Config\npreferences: {}\n"
                "clusters:\n- name: test\n  cluster:\n"
                f"    server: {self.url}\n{ca_line}"
                "users:\n- name: test\n  user:\n" + user +
                "contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n"
                f"    namespace: {namespace}\n"
                "current-context: test\n")
        with open(path, "w") as f:
            f.write(text)
        self.kubeconfig = str(path)
        return str(path)

    def write_incluster(self, d, token=None):
        """The files a pod sees under /var/run/secrets/kubernetes.io/serviceaccount
        (token, ca.crt, namespace) in directory d; returns the environment a
        pod gets (KUBERNETES_SERVICE_HOST / _PORT) pointing here.  Rewrite
        d/token to rotate the token."""
        d = str(d)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "token"), "w") as f:
            f.write(token or self.default_token or sorted(self.tokens)[0])
        with open(os.path.join(d, "ca.crt"), "wb") as f:
            f.write(self.ca_pem)
        with open(os.path.join(d, "namespace"), "w") as f:
            f.write("default")
        return {"KUBERNETES_SERVICE_HOST": self.host, "KUBERNETES_SERVICE_PORT": str(self.port),
                "KUBERNETES_SERVICE_PORT_HTTPS": str(self.port)}

    # -- tokens -----------------------------------------------------------
    def set_tokens(self, tokens):
        with self.cond:
            self.tokens = set(tokens)

    def add_token(self, t):
        with self.cond:
            self.tokens.add(t)

    def remove_token(self, t):
        with self.cond:
            self.tokens.discard(t)

    # -- faults -----------------------------------------------------------
    # Every fault takes the next `count` API requests whose path contains
    # `path` (None: any), whose method is `method` and whose watch-ness is
    # `watch` (None: either); faults are matched in the order they were set.
    def garbage(self, count=1, path=None, method=None, watch=None):
        with self.cond:
            self.faults.append({"kind": "garbage", "count": count, "path": path, "method": method,
                                "watch": watch})

    def error_status(self, code, retry_after=None, count=1, path=None, message=None, method=None, watch=None):
        with self.cond:
            self.faults.append({"kind": "error", "count": count, "path": path, "code": int(code),
                                "retry_after": retry_after, "message": message, "method": method,
                                "watch": watch})

    def delay(self, seconds, count=1, path=None, method=None, watch=None):
        with self.cond:
            self.faults.append({"kind": "delay", "count": count, "path": path, "seconds": seconds,
                                "method": method, "watch": watch})

    def clear_faults(self):
        with self.cond:
            self.faults = []

    def _take_fault(self, path, method, watch):
        with self.cond:
            for f in self.faults:
                if (f["count"] > 0 and (f["path"] is None or f["path"] in path)
                        and f.get("method") in (None, method) and f.get("watch") in (None, watch)):
                    f["count"] -= 1
                    fault = dict(f)
                    self.faults = [x for x in self.faults if x["count"] > 0]
                    return fault
        return None

    # -- request log ------------------------------------------------------
    def requests(self, method=None, path=None, watch=None):
        with self.cond:
            out = []
            for r in self.log:
                if method and r["method"] != method:
                    continue
                if path and path not in r["path"]:
                    continue
                if watch is not None and r["watch"] != watch:
                    continue
                out.append(dict(r))
            return out

    def clear_requests(self):
        with self.cond:
            self.log = []

    def wait_requests(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [r for r in self.requests() if pred(r)]
            if hits:
                return hits
            time.sleep(0.02)
        raise TimeoutError("no matching request logged")

    def open_watches(self):
        with self.cond:
            return len(self._watches)

    # -- resources --------------------------------------------------------
    def add_resources(self, resources):
        with self.cond:
            for r in resources:
                if r.key not in self.store:
                    self.resources.append(r)
                    self.store[r.key] = {}

    def resolve(self, kind, api_version=None):
        """The Resource named by Kind, plural, short name or 'group/version/Kind'."""
        if "/" in kind and api_version is None:
            api_version, kind = kind.rsplit("/", 1)
        for r in self.resources:
            if api_version is not None and r.api_version != api_version:
                continue
            if kind in (r.kind, r.plural, r.singular) or kind in r.short:
                return r
        raise KeyError(f"no resource {api_version or ''} {kind}")

    def _res_of(self, obj):
        return self.resolve(obj["kind"], obj.get("apiVersion"))

    def _lookup(self, group, version, plural):
        for r in self.resources:
            if r.group == group and r.version == version and r.plural == plural:
                return r
        return None

    @property
    def resource_version(self):
        with self.cond:
            return self.rv

    def current_rv(self):
        return self.resource_version

    # -- storage core (all under self.cond) ---------------------------------
    def _commit(self, res, etype, obj, prev):
        self.history.append((self.rv, res.key, etype, copy.deepcopy(obj), prev))
        if len(self.history) > self.max_history:
            drop = len(self.history) - self.max_history
            self.compacted = max(self.compacted, self.history[drop - 1][0])
            del self.history[:drop]
        self.cond.notify_all()

    def _ensure_namespace(self, ns):
        nsres = self.resolve("Namespace", "v1")
        if ns and (None, ns) not in self.store[nsres.key]:
            self._create(nsres, {"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes"]},
                                 "status": {"phase": "Active"}}, None, keep_meta=False)

    def _create(self, res, obj, namespace, keep_meta=True, check=False):
        with self.cond:
            obj = copy.deepcopy(obj)
            obj["apiVersion"], obj["kind"] = res.api_version, res.kind
            md = obj.setdefault("metadata", {})
            if not md.get("name"):
                if md.get("generateName"):
                    md["name"] = md["generateName"] + "".join(
                        random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
                else:
                    raise ApiError(422, "Invalid", f"{res.kind} in version \"{res.version}\" "
                                   f"cannot be handled as a {res.kind}: metadata.name: Required value")
            if res.namespaced:
                ns = namespace or md.get("namespace") or "default"
                if md.get("namespace") and md["namespace"] != ns:
                    raise ApiError(400, "BadRequest", "the namespace of the provided object does "
                                   "not match the namespace sent on the request")
                md["namespace"] = ns
                self._ensure_namespace(ns)
            else:
                md.pop("namespace", None)
                ns = None
            if check:
                validate(res, obj)
            key = (ns, md["name"])
            if key in self.store[res.key]:
                raise ApiError(409, "AlreadyExists", f'{res.qualified()} "{md["name"]}" already exists',
                               {"name": md["name"], "group": res.group, "kind": res.plural})
            self.rv += 1
            md["resourceVersion"] = str(self.rv)
            if not keep_meta or not md.get("uid"):
                md["uid"] = str(uuid.uuid4())
            if not keep_meta or not md.get("creationTimestamp"):
                md["creationTimestamp"] = now_rfc3339()
            md["generation"] = 1
            for k in ("deletionTimestamp", "selfLink"):
                md.pop(k, None)
            self.store[res.key][key] = obj
            self._commit(res, "ADDED", obj, None)
            return copy.deepcopy(obj)

    def _get(self, res, ns, name):
        obj = self.store[res.key].get((ns if res.namespaced else None, name))
        if obj is None:
            raise not_found(res, name)
        return obj

    def _replace(self, res, ns, name, new, subresource=None, check_rv=True, check=False):
        """Store `new` as object ns/name; status-subresource rules applied."""
        with self.cond:
            old = self._get(res, ns, name)
            new = copy.deepcopy(new)
            md = new.setdefault("metadata", {})
            if md.get("name", name) != name:
                raise ApiError(400, "BadRequest", "the name of the object "
                               f"({md.get('name')}) does not match the name on the URL ({name})")
            if res.namespaced and md.get("namespace", ns) != ns:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does "
                               "not match the namespace sent on the request")
            if check_rv and md.get("resourceVersion") and md["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            if md.get("uid") and md["uid"] != old["metadata"]["uid"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.qualified()} '
                               f'"{name}": Precondition failed: UID in precondition: {md["uid"]}, '
                               f'UID in object meta: {old["metadata"]["uid"]}')
            if subresource == "status":
                merged = copy.deepcopy(old)
                if "status" in new:
                    merged["status"] = new["status"]
                else:
                    merged.pop("status", None)
                new = merged
            elif "status" in res.subresources:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            new["apiVersion"], new["kind"] = res.api_version, res.kind
            nmd = new["metadata"]
            omd = old["metadata"]
            for k in ("uid", "creationTimestamp", "generation", "resourceVersion", "deletionTimestamp"):
                if k in omd:
                    nmd[k] = omd[k]
                else:
                    nmd.pop(k, None)
            nmd["name"] = name
            if res.namespaced:
                nmd["namespace"] = ns
            else:
                nmd.pop("namespace", None)
            if check:
                validate(res, new)
            if new == old:
                return copy.deepcopy(old)      # a no-op write bumps nothing
            if _spec_part(new) != _spec_part(old):
                nmd["generation"] = omd.get("generation", 1) + 1
            self.rv += 1
            nmd["resourceVersion"] = str(self.rv)
            self.store[res.key][(ns if res.namespaced else None, name)] = new
            self._commit(res, "MODIFIED", new, copy.deepcopy(old))
            return copy.deepcopy(new)

    def _delete(self, res, ns, name, preconditions=None):
        with self.cond:
            old = self._get(res, ns, name)
            pre = preconditions or {}
            if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.qualified()} '
                               f'"{name}": Precondition failed: ResourceVersion in precondition: '
                               f'{pre["resourceVersion"]}, ResourceVersion in object meta: '
                               f'{old["metadata"]["resourceVersion"]}')
            if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.qualified()} '
                               f'"{name}": Precondition failed: UID in precondition: {pre["uid"]}, '
                               f'UID in object meta: {old["metadata"]["uid"]}')
            del self.store[res.key][(ns if res.namespaced else None, name)]
            self.rv += 1
            gone = copy.deepcopy(old)
            gone["metadata"]["resourceVersion"] = str(self.rv)
            self._commit(res, "DELETED", gone, copy.deepcopy(old))
            return gone

    def _snapshot(self, res, rv):
        """{key: obj} of res as it was at rv (needs rv >= compaction point)."""
        objs = dict(self.store[res.key])
        for erv, rkey, etype, obj, prev in reversed(self.history):
            if erv <= rv:
                break
            if rkey != res.key:
                continue
            md = obj["metadata"]
            key = (md.get("namespace"), md["name"])
            if etype == "ADDED":
                objs.pop(key, None)
            else:
                objs[key] = prev
        return objs

    def _patched(self, res, old, ctype, body):
        if ctype.startswith("application/json-patch+json"):
            return json_patch(old, _loads(body))
        if ctype.startswith("application/merge-patch+json"):
            return merge_patch(old, _loads(body))
        if ctype.startswith("application/strategic-merge-patch+json"):
            return merge_patch(old, _loads(body), strategic=True)
        if ctype.startswith("application/apply-patch+yaml") or ctype.startswith("application/apply-patch+cbor"):
            return merge_patch(old, _load_yaml(body))
        raise ApiError(415, "UnsupportedMediaType",
                       'the body of the request was in an unknown format - accepted media types '
                       'include: application/json-patch+json, application/merge-patch+json, '
                       'application/apply-patch+yaml')

    # -- public object API ------------------------------------------------
    def create(self, obj, namespace=None):
        return self._create(self._res_of(obj), obj, namespace)

    def apply(self, obj):
        """Create or replace obj (no resourceVersion check; status taken as given)."""
        res = self._res_of(obj)
        md = obj.get("metadata", {})
        ns = (md.get("namespace") or "default") if res.namespaced else None
        with self.cond:
            if (ns, md.get("name")) in self.store[res.key]:
                out = self._replace(res, ns, md["name"], obj, check_rv=False)
                if "status" in res.subresources and "status" in obj:
                    out = self._replace(res, ns, md["name"], obj, subresource="status", check_rv=False)
                return out
            return self._create(res, obj, ns)

    def update(self, obj):
        res = self._res_of(obj)
        md = obj["metadata"]
        ns = (md.get("namespace") or "default") if res.namespaced else None
        return self._replace(res, ns, md["name"], obj)

    def patch(self, kind, name, patch, namespace=None, subresource=None):
        res = self.resolve(kind)
        ns = (namespace or "default") if res.namespaced else None
        with self.cond:
            old = self._get(res, ns, name)
            return self._replace(res, ns, name, merge_patch(old, patch), subresource=subresource)

    def set_status(self, kind, name, status, namespace=None):
        res = self.resolve(kind)
        ns = (namespace or "default") if res.namespaced else None
        with self.cond:
            old = copy.deepcopy(self._get(res, ns, name))
            old["status"] = status
            return self._replace(res, ns, name, old, subresource="status", check_rv=False)

    def delete(self, kind, name, namespace=None):
        res = self.resolve(kind)
        ns = (namespace or "default") if res.namespaced else None
        try:
            return self._delete(res, ns, name)
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    def get(self, kind, name, namespace=None):
        res = self.resolve(kind)
        ns = (namespace or "default") if res.namespaced else None
        with self.cond:
            obj = self.store[res.key].get((ns, name))
            return copy.deepcopy(obj)

    def list(self, kind, namespace=None):
        res = self.resolve(kind)
        with self.cond:
            return [copy.deepcopy(o) for k, o in sorted(self.store[res.key].items(), key=_sortkey)
                    if namespace is None or k[0] == namespace]

    def load_fixtures(self, path):
        """Apply every object in a YAML/JSON file, or in every such file of a directory."""
        path = str(path)
        files = ([os.path.join(path, f) for f in sorted(os.listdir(path))
                  if f.endswith((".yaml", ".yml", ".json"))] if os.path.isdir(path) else [path])
        out = []
        for fn in files:
            with open(fn, "rb") as f:
                for obj in _load_documents(f.read()):
                    out.append(self.apply(obj))
        return out

    def compact(self, rv=None, break_watches=False):
        """Forget history up to rv (default: the current rv). Lists and watches
        from an older resourceVersion then get 410 Gone.  Open watches get
        up to 2 s to deliver the events up to rv first; one still behind then
        gets an ERROR 410 event (as does every open watch with break_watches)."""
        with self.cond:
            rv = self.rv if rv is None else int(rv)
            # let open watches take the events up to rv first (as etcd's watchers
            # would have in the time a real compaction takes), at most 2 s
            deadline = time.monotonic() + 2.0
            while any(w.pos is not None and w.pos < rv and not w.stop for w in self._watches):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.05))
            self.compacted = max(self.compacted, rv)
            self.history = [h for h in self.history if h[0] > self.compacted]
        if break_watches:
            self.break_watches(gone=True)
        return self.compacted

    def break_watches(self, gone=False, clean=False):
        """End every open watch stream: cut the connection (default), end the
        chunked stream cleanly as a server-side timeout does (clean=True), or
        send an ERROR event with a 410 Status first (gone=True)."""
        with self.cond:
            for w in self._watches:
                w.stop = "gone" if gone else "end" if clean else "close"
            self.cond.notify_all()

    # -- HTTP dispatch ----------------------------------------------------
    def _authorized(self, header):
        if not header or not header.startswith("Bearer "):
            return None
        tok = header[7:].strip()
        with self.cond:
            return tok if tok in self.tokens else None


def _spec_part(obj):
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _sortkey(item):
    (ns, name), _ = item
    return (ns or "", name)


def _loads(body):
    try:
        return json.loads(body or b"null")
    except ValueError as e:
        raise ApiError(400, "BadRequest", f"couldn't get version/kind; json parse error: {e}")


def _load_yaml(body):
    import yaml
    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as e:
        raise ApiError(400, "BadRequest", f"error decoding YAML: {e}")


def _load_documents(data):
    text = data.decode()
    if text.lstrip().startswith(("{", "[")):
        docs = [json.loads(text)]
    else:
        import yaml
        docs = [d for d in yaml.safe_load_all(text) if d]
    out = []
    for d in docs:
        if isinstance(d, list):
            out.extend(d)
        elif d.get("kind", "").endswith("List") and "items" in d:
            out.extend(d["items"])
        else:
            out.append(d)
    return out


def _encode_continue(rv, key):
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": f"{key[0] or ''}/{key[1]}\x00"})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_continue(token):
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        d = json.loads(raw)
        ns, name = d["start"].rstrip("\x00").split("/", 1)
        return int(d["rv"]), (ns, name)
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "BadRequest", "continue key is not valid: incorrect encoded start "
                       "resourceVersion (version meta.k8s.io/v1)")


def _truthy(v):
    return v is not None and v.lower() in ("1", "true", "yes")


def _int_param(q, name):
    v = q.get(name)
    if v in (None, ""):
        return None
    try:
        return int(v)
    except ValueError:
        raise ApiError(400, "BadRequest", f"invalid {name} {v!r}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tapwork-test-apiserver"
    sys_version = ""
    timeout = 120

    @property
    def api(self):
        return self.server.api

    def setup(self):
        self.request.settimeout(10)
        self.request.do_handshake()
        self.request.settimeout(self.timeout)
        super().setup()
        with self.api.cond:
            self.api._conns.add(self.request)

    def finish(self):
        with self.api.cond:
            self.api._conns.discard(self.request)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, *args):
        pass

    # every verb goes through one entry point
    def do_GET(self):
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def send_response(self, code, message=None):
        self._status = code
        entry = getattr(self, "_entry", None)
        if entry is not None:
            entry["status"] = code      # logged before the client can see the answer
        super().send_response(code, message)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, code, payload, headers=None, ctype="application/json"):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        gz = self.api.gzip_min
        gzipped = (gz is not None and len(body) >= gz
                   and "gzip" in self.headers.get("Accept-Encoding", "").lower())
        if gzipped:       # as the real apiserver does for large answers (APIResponseCompression)
            body = gzip.compress(body, compresslevel=1)
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = code

    def _serve(self):
        api = self.api
        u = urllib.parse.urlsplit(self.path)
        path = u.path.rstrip("/") or "/"
        q = {k: v[0] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
        self._status = 0
        self._entry = None
        body = self._body()
        entry = {"method": self.command, "path": path, "query": q, "rawquery": u.query,
                 "watch": _truthy(q.get("watch")) or "/watch/" in path, "time": time.time(),
                 "content_type": self.headers.get("Content-Type", ""),
                 "accept": self.headers.get("Accept", ""), "token": None, "status": None}
        auth = self.headers.get("Authorization", "")
        if path.startswith("/_test/"):
            return self._control(path, body, auth)
        entry["token"] = auth[7:].strip() if auth.startswith("Bearer ") else None
        with api.cond:
            api.log.append(entry)
        self._entry = entry
        try:
            if api._authorized(auth) is None:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            fault = api._take_fault(path, self.command, entry["watch"])
            if fault:
                if fault["kind"] == "garbage":
                    self._send(200, b"<html>this is not JSON\x00\xff", ctype="application/json")
                    return
                if fault["kind"] == "delay":
                    time.sleep(fault["seconds"])
                else:
                    code = fault["code"]
                    hdr = {}
                    if fault["retry_after"] is not None:
                        hdr["Retry-After"] = fault["retry_after"]
                    raise ApiError(code, REASONS.get(code, "Unknown"),
                                   fault["message"] or f"injected error {code}", headers=hdr)
            self._route(path, q, body)
        except ApiError as e:
            self._send(e.code, e.status(), e.headers)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
        finally:
            self._entry = None

    def _control(self, path, body, auth):
        api = self.api
        if auth != f"Bearer {api.control_token}":
            return self._send(401, status_object(401, "Unauthorized", "Unauthorized"))
        try:
            if path == "/_test/log":
                return self._send(200, {"requests": api.requests()})
            if path == "/_test/call" and self.command == "POST":
                req = json.loads(body or b"{}")
                name = req.get("method")
                if name not in CONTROL_METHODS:
                    return self._send(400, {"error": f"unknown control method {name!r}"})
                result = getattr(api, name)(*req.get("args", []), **req.get("kwargs", {}))
                return self._send(200, {"result": result})
            return self._send(404, {"error": "unknown control path"})
        except ApiError as e:
            return self._send(e.code, e.status())
        except Exception as e:       # report, don't kill the server
            return self._send(500, {"error": repr(e)})

    # -- routing ------------------------------------------------------------
    def _route(self, path, q, body):
        api = self.api
        parts = [p for p in path.split("/") if p]
        if path in ("/healthz", "/livez", "/readyz"):
            return self._send(200, b"ok", ctype="text/plain; charset=utf-8")
        if path == "/version":
            return self._send(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0-tapwork-test",
                                    "gitCommit": "0" * 40, "gitTreeState": "clean",
                                    "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0",
                                    "compiler": "gc", "platform": "linux/amd64"})
        if path in ("/api", "/apis") and api.aggregated_discovery and AGGREGATED in self.headers.get("Accept", ""):
            return self._send(200, self._aggregated(path == "/api"), ctype=f"application/json;{AGGREGATED}")
        if path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": [
                                        {"clientCIDR": "0.0.0.0/0",
                                         "serverAddress": f"{api.host}:{api.port}"}]})
        if path == "/apis":
            return self._send(200, self._group_list())
        if path == "/openapi/v3":
            return self._send(200, self._openapi_index())
        if path.startswith("/openapi/v3/"):
            return self._send(200, self._openapi_gv(path[len("/openapi/v3/"):]))
        if parts and parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts and parts[0] == "apis" and len(parts) >= 2:
            if len(parts) == 2:
                g = self._group(parts[1])
                if g is None:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                return self._send(200, dict(g, kind="APIGroup", apiVersion="v1"))
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not any(r.gv == (group, version) for r in api.resources):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            return self._send(200, self._resource_list(group, version))
        watch = False
        if rest[0] == "watch":
            watch, rest = True, rest[1:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and api._lookup(group, version, rest[2]):
            ns, rest = rest[1], rest[2:]
        res = api._lookup(group, version, rest[0]) if rest else None
        if res is None or len(rest) > 3 or (ns is not None and not res.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else None
        if sub is not None and sub not in res.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if res.namespaced and name is not None and ns is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        watch = watch or _truthy(q.get("watch"))
        m = self.command
        if name is None:
            if m in ("GET", "HEAD"):
                if watch:
                    return self._watch(res, ns, q)
                return self._list(res, ns, q)
            if m == "POST":
                obj = self._decode(body)
                self._check_kind(res, obj)
                if _dry_run(q):
                    validate(res, obj)
                    return self._send(201, obj)
                return self._send(201, api._create(res, obj, ns if res.namespaced else None, keep_meta=False,
                                                   check=True))
            if m == "DELETE":
                return self._delete_collection(res, ns, q)
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if m in ("GET", "HEAD"):
            if watch:   # legacy /watch/.../NAME: a watch on one object
                q = dict(q, fieldSelector=",".join(filter(None, [q.get("fieldSelector"), f"metadata.name={name}"])))
                return self._watch(res, ns, q)
            with api.cond:
                return self._send(200, copy.deepcopy(api._get(res, ns, name)))
        if m == "PUT":
            obj = self._decode(body)
            self._check_kind(res, obj)
            return self._send(200, api._replace(res, ns, name, obj, subresource=sub, check=True))
        if m == "PATCH":
            ctype = self.headers.get("Content-Type", "")
            with api.cond:
                try:
                    old = api._get(res, ns, name)
                except ApiError:
                    if ctype.startswith("application/apply-patch"):   # server-side apply creates
                        obj = _load_yaml(body)
                        self._check_kind(res, obj)
                        return self._send(201, api._create(res, obj, ns, keep_meta=False, check=True))
                    raise
                new = api._patched(res, copy.deepcopy(old), ctype, body)
                if not isinstance(new, dict):
                    raise ApiError(422, "Invalid", "patch did not produce an object")
                return self._send(200, api._replace(res, ns, name, new, subresource=sub, check=True))
        if m == "DELETE":
            opts = self._decode(body) if body else {}
            if _dry_run(q):
                with api.cond:
                    return self._send(200, copy.deepcopy(api._get(res, ns, name)))
            gone = api._delete(res, ns, name, (opts or {}).get("preconditions"))
            return self._send(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                    "details": {"name": name, "group": res.group, "kind": res.plural,
                                                "uid": gone["metadata"]["uid"]}})
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _decode(self, body):
        obj = _loads(body)
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the body of the request is not an object")
        return obj

    @staticmethod
    def _check_kind(res, obj):
        kind, av = obj.get("kind"), obj.get("apiVersion")
        if (kind and kind != res.kind) or (av and av != res.api_version):
            raise ApiError(400, "BadRequest", f"the API version in the data ({av}) does not match "
                           f"the expected API version ({res.api_version})")

    # -- discovery ----------------------------------------------------------
    def _group(self, name):
        versions = []
        for r in self.api.resources:
            if r.group == name and r.version not in versions:
                versions.append(r.version)
        if not versions:
            return None
        vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {"name": name, "versions": vs, "preferredVersion": vs[0]}

    def _aggregated(self, core):
        """apidiscovery.k8s.io/v2 APIGroupDiscoveryList: /api (core) or /apis."""
        groups = {}
        for r in self.api.resources:
            if (r.group == "") != core:
                continue
            versions = groups.setdefault(r.group, {})
            gvk = {"group": r.group, "version": r.version, "kind": r.kind}
            e = {"resource": r.plural, "responseKind": gvk, "scope": "Namespaced" if r.namespaced else "Cluster",
                 "singularResource": r.singular, "verbs": r.verbs}
            if r.short:
                e["shortNames"] = r.short
            if r.subresources:
                e["subresources"] = [{"subresource": s, "responseKind": gvk, "verbs": ["get", "patch", "update"]}
                                     for s in r.subresources]
            versions.setdefault(r.version, []).append(e)
        items = [{"metadata": {"name": g} if g else {}, "versions": [
                    {"version": v, "resources": rs, "freshness": "Current"} for v, rs in vs.items()]}
                 for g, vs in groups.items()]
        return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
                "metadata": {}, "items": items}

    def _group_list(self):
        names = []
        for r in self.api.resources:
            if r.group and r.group not in names:
                names.append(r.group)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [self._group(n) for n in names]}

    def _resource_list(self, group, version):
        out = []
        for r in self.api.resources:
            if r.gv != (group, version):
                continue
            e = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                 "kind": r.kind, "verbs": r.verbs}
            if r.short:
                e["shortNames"] = r.short
            out.append(e)
            for s in r.subresources:
                out.append({"name": f"{r.plural}/{s}", "singularName": "", "namespaced": r.namespaced,
                            "kind": r.kind, "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version, "resources": out}

    # -- OpenAPI v3 (only what kubectl's field-validation check reads) ----
    def _gv_paths(self):
        out = {}
        for r in self.api.resources:
            out.setdefault("apis/%s/%s" % r.gv if r.group else f"api/{r.version}", []).append(r)
        return out

    def _openapi_index(self):
        return {"paths": {p: {"serverRelativeURL": f"/openapi/v3/{p}?hash={abs(hash(p)):016X}"}
                          for p in self._gv_paths()}}

    def _openapi_gv(self, gvpath):
        rs = self._gv_paths().get(gvpath)
        if rs is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        params = [{"name": n, "in": "query", "schema": {"type": "string"}}
                  for n in ("dryRun", "fieldManager", "fieldValidation", "force")]
        paths = {}
        for r in rs:
            gvk = {"group": r.group, "version": r.version, "kind": r.kind}
            base = f"/{gvpath}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"/{gvpath}/{r.plural}"
            op = {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "patch",
                  "parameters": params, "responses": {"200": {"description": "OK"}}}
            paths[base + "/{name}"] = {"patch": op}
            for s in r.subresources:
                paths[f"{base}/{{name}}/{s}"] = {"patch": dict(op)}
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
                "paths": paths, "components": {"schemas": {}}}

    # -- list -----------------------------------------------------------
    def _list(self, res, ns, q):
        api = self.api
        sel = Selection(res, ns, q.get("labelSelector"), q.get("fieldSelector"))
        limit = _int_param(q, "limit") or 0
        cont = q.get("continue")
        rvq, match = q.get("resourceVersion"), q.get("resourceVersionMatch")
        with api.cond:
            start = None
            if cont:
                if rvq:
                    raise ApiError(400, "BadRequest", "specifying resource version is not allowed when using continue")
                list_rv, start = _decode_continue(cont)
                if list_rv < api.compacted:
                    raise expired("The provided continue parameter is too old to display a "
                                  "consistent list result. You can start a new list without the "
                                  "continue parameter.")
                objs = api._snapshot(res, list_rv)
            elif match == "Exact" and rvq:
                list_rv = int(rvq)
                if list_rv < api.compacted:
                    raise expired(f"too old resource version: {list_rv} ({api.compacted})")
                if list_rv > api.rv:
                    raise ApiError(504, "Timeout", f"Too large resource version: {list_rv}, current: {api.rv}")
                objs = api._snapshot(res, list_rv)
            else:
                list_rv, objs = api.rv, api.store[res.key]
            items = [(k, o) for k, o in sorted(objs.items(), key=_sortkey)
                     if (start is None or (k[0] or "", k[1]) > start) and sel.match(o)]
            more = ""
            remaining = None
            if limit and len(items) > limit:
                last = items[limit - 1][0]
                more = _encode_continue(list_rv, (last[0] or "", last[1]))
                if sel.empty:
                    remaining = len(items) - limit
                items = items[:limit]
            out_items = []
            for _, o in items:
                o = copy.deepcopy(o)
                o.pop("apiVersion", None)
                o.pop("kind", None)
                out_items.append(o)
        md = {"resourceVersion": str(list_rv)}
        if more:
            md["continue"] = more
        if remaining is not None:
            md["remainingItemCount"] = remaining
        self._send(200, {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                         "metadata": md, "items": out_items})

    def _delete_collection(self, res, ns, q):
        api = self.api
        sel = Selection(res, ns, q.get("labelSelector"), q.get("fieldSelector"))
        with api.cond:
            keys = [k for k, o in sorted(api.store[res.key].items(), key=_sortkey) if sel.match(o)]
            gone = [api._delete(res, k[0], k[1]) for k in keys]
            rv = api.rv
        self._send(200, {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                         "metadata": {"resourceVersion": str(rv)}, "items": gone})

    # -- watch ------------------------------------------------------------
    def _watch(self, res, ns, q):
        api = self.api
        sel = Selection(res, ns, q.get("labelSelector"), q.get("fieldSelector"))
        bookmarks = _truthy(q.get("allowWatchBookmarks"))
        timeout = _int_param(q, "timeoutSeconds")
        duration = api.watch_timeout if not timeout else timeout    # 0: the default, as upstream
        rvq = q.get("resourceVersion") or ""
        initial = _truthy(q.get("sendInitialEvents"))
        w = _Watch()
        with api.cond:
            pending = []
            if rvq in ("", "0") or initial:
                pos = api.rv
                for _, o in sorted(api.store[res.key].items(), key=_sortkey):
                    if sel.match(o):
                        pending.append(("ADDED", copy.deepcopy(o)))
                if initial and bookmarks:
                    pending.append(("BOOKMARK", self._bookmark(res, pos, initial_end=True)))
                gone = None
            else:
                try:
                    pos = int(rvq)
                except ValueError:
                    raise ApiError(400, "BadRequest", f"invalid resource version {rvq!r}")
                gone = pos < api.compacted
            if gone and api.gone_as == "status":
                raise expired(f"too old resource version: {pos} ({api.compacted})")
            w.pos = api.rv if gone else pos
            api._watches.add(w)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache, private")
            self.end_headers()
            self._status = 200
            if gone:
                self._event("ERROR", status_object(410, "Expired", f"too old resource version: {pos} ({api.compacted})"))
                return self._end_chunks()
            self._events(pending)
            deadline = time.monotonic() + duration
            next_bm = time.monotonic() + api.bookmark_interval
            while True:
                out = []
                with api.cond:
                    while True:
                        if w.stop:
                            break
                        now = time.monotonic()
                        if now >= deadline:
                            break
                        if pos < api.compacted:     # fell behind a compaction
                            w.stop = "gone"
                            break
                        fresh = _after(api.history, pos) if api.rv > pos else []
                        if fresh:
                            for erv, rkey, etype, obj, prev in fresh:
                                pos = erv
                                if rkey != res.key:
                                    continue
                                now_in, was_in = sel.match(obj), sel.match(prev)
                                if etype == "MODIFIED" and now_in and not was_in:
                                    etype = "ADDED"
                                elif etype == "MODIFIED" and was_in and not now_in:
                                    etype = "DELETED"
                                elif etype == "DELETED" and not was_in and not now_in:
                                    continue
                                elif not now_in and etype != "DELETED":
                                    continue
                                out.append((etype, copy.deepcopy(obj)))
                            pos = max(pos, api.rv)
                            w.pos = pos
                            api.cond.notify_all()      # compact() may be waiting for us
                            if out:
                                break
                        if bookmarks and now >= next_bm:
                            break
                        wait = deadline - now
                        if bookmarks:
                            wait = min(wait, next_bm - now)
                        api.cond.wait(max(0.0, min(wait, 1.0)))
                    stop = w.stop
                    compacted = api.compacted
                self._events(out)
                if stop == "gone":
                    self._event("ERROR", status_object(410, "Expired",
                                                       f"too old resource version: {pos} ({compacted})"))
                    return self._end_chunks()
                if stop == "end":
                    return self._end_chunks()
                if stop == "close":
                    self.close_connection = True
                    return self._abort()
                now = time.monotonic()
                if now >= deadline:
                    if bookmarks:
                        self._event("BOOKMARK", self._bookmark(res, pos))
                    return self._end_chunks()
                if bookmarks and now >= next_bm:
                    self._event("BOOKMARK", self._bookmark(res, pos))
                    next_bm = now + api.bookmark_interval
        finally:
            with api.cond:
                api._watches.discard(w)

    @staticmethod
    def _bookmark(res, rv, initial_end=False):
        md = {"resourceVersion": str(rv)}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": res.kind, "apiVersion": res.api_version, "metadata": md}

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _event(self, etype, obj):
        self._events([(etype, obj)])

    def _events(self, events):
        """One JSON line per event; with split_chunks the bytes of all the
        lines are cut into chunks at random offsets (a chunk may end mid-line
        or hold the end of one line and the start of the next)."""
        if not events:
            return
        lines = [json.dumps({"type": t, "object": o}, separators=(",", ":")).encode() + b"\n"
                 for t, o in events]
        if not self.api.split_chunks:
            for line in lines:
                self._chunk(line)
            self.wfile.flush()
            return
        data = b"".join(lines)
        ncuts = min(len(data) - 1, random.randint(1, 3) * len(lines) + len(data) // 65536)
        cuts = sorted(random.sample(range(1, len(data)), ncuts)) if ncuts > 0 else []
        prev = 0
        for c in cuts + [len(data)]:
            self._chunk(data[prev:c])
            self.wfile.flush()
            prev = c

    def _end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _abort(self):
        try:
            self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _after(history, pos):
    """The history entries with rv > pos (history is ordered by rv)."""
    i = len(history)
    while i > 0 and history[i - 1][0] > pos:
        i -= 1
    return history[i:]


def _dry_run(q):
    return q.get("dryRun") == "All"


# ---------------------------------------------------------------------------
# Subprocess mode

def main(argv=None):
    ap = argparse.ArgumentParser(description="test Kubernetes API server (see the module docstring)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", action="append", default=[], help="a valid bearer token (repeatable)")
    ap.add_argument("--control-token", default=None, help="token for /_test/* (default: the first --token)")
    ap.add_argument("--write-kubeconfig", default=None, metavar="PATH")
    ap.add_argument("--write-incluster", default=None, metavar="DIR",
                    help="write token, ca.crt, namespace there (a pod's serviceaccount directory)")
    ap.add_argument("--fixtures", action="append", default=[], metavar="DIR_OR_FILE")
    ap.add_argument("--workdir", default=None, help="where the CA and certificate go")
    ap.add_argument("--gateway-api", action="store_true", help="also serve gateway.networking.k8s.io")
    ap.add_argument("--bookmark-interval", type=float, default=1.0)
    ap.add_argument("--watch-timeout", type=float, default=1800.0)
    ap.add_argument("--split-chunks", action="store_true")
    args = ap.parse_args(argv)
    api = ApiServer(tokens=args.token or ["test-token"], port=args.port, workdir=args.workdir,
                    control_token=args.control_token, gateway_api=args.gateway_api,
                    bookmark_interval=args.bookmark_interval, split_chunks=args.split_chunks,
                    watch_timeout=args.watch_timeout)
    for f in args.fixtures:
        api.load_fixtures(f)
    api.start()
    if args.write_kubeconfig:
        api.write_kubeconfig(args.write_kubeconfig)
    if args.write_incluster:
        api.write_incluster(args.write_incluster)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    print(f"READY {api.url}", flush=True)
    while not done.wait(0.5):
        pass
    api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
