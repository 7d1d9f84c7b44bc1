#!/usr/bin/env python3
"""Static checks of deploy/kubernetes/*.yaml (no cluster needed).

Run by tests/test_k8s_manifests.sh. Checks that the manifests parse, that
they agree with each other (selectors, port names, claim names, the HPA's
target) and with the Dockerfile (non-root UID, port), and that the
Deployment has what a production rollout needs: probes on /readyz and
/healthz, a preStop hook and a grace period that covers ctrd's drain,
resources, a locked-down securityContext, the model from a volume, and
Prometheus scrape annotations. Prints one line per failed check; exits 1
if any failed.
"""
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KDIR = os.path.join(ROOT, "deploy", "kubernetes")

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def load_all():
    docs = []
    for name in sorted(os.listdir(KDIR)):
        if not name.endswith(".yaml"):
            continue
        with open(os.path.join(KDIR, name), encoding="utf-8") as f:
            try:
                parsed = [d for d in yaml.safe_load_all(f) if d is not None]
            except yaml.YAMLError as e:
                check(False, f"{name}: not valid YAML: {e}")
                continue
        for d in parsed:
            docs.append((name, d))
    return docs


def dockerfile_facts():
    user = port = None
    with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*USER\s+(\S+)", line)
            if m:
                user = m.group(1)
            m = re.match(r"\s*EXPOSE\s+(\d+)", line)
            if m:
                port = int(m.group(1))
    uid = int(user.split(":")[0]) if user and user.split(":")[0].isdigit() else None
    return uid, port


def strings_only(where, mapping):
    """Kubernetes rejects non-string label/annotation/env values
    (e.g. an unquoted `true` or `8080`)."""
    for k, v in (mapping or {}).items():
        check(isinstance(v, str), f"{where}: value of {k!r} must be a string, got {v!r}")


def subset(small, big):
    return all(big.get(k) == v for k, v in (small or {}).items())


def main():
    docs = load_all()
    by_kind = {}
    for name, d in docs:
        where = f"{name}: {d.get('kind')}/{(d.get('metadata') or {}).get('name')}"
        check(isinstance(d, dict) and d.get("apiVersion") and d.get("kind"),
              f"{name}: document without apiVersion/kind")
        if d.get("kind") != "Kustomization":
            check((d.get("metadata") or {}).get("name"), f"{where}: no metadata.name")
            strings_only(f"{where} labels", (d.get("metadata") or {}).get("labels"))
            strings_only(f"{where} annotations", (d.get("metadata") or {}).get("annotations"))
        by_kind.setdefault(d.get("kind"), []).append((name, d))

    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "ServiceMonitor"):
        check(len(by_kind.get(kind, [])) == 1, f"expected exactly one {kind}, found {len(by_kind.get(kind, []))}")
    if failures:
        return

    uid, exposed = dockerfile_facts()
    check(uid is not None and uid != 0, f"Dockerfile USER must be a numeric non-root UID (got {uid})")

    # --- Deployment -------------------------------------------------------
    _, dep = by_kind["Deployment"][0]
    check(dep["apiVersion"] == "apps/v1", "Deployment apiVersion must be apps/v1")
    spec = dep["spec"]
    tmpl = spec["template"]
    tlabels = tmpl["metadata"].get("labels") or {}
    strings_only("Deployment template labels", tlabels)
    check(subset(spec["selector"]["matchLabels"], tlabels),
          "Deployment selector.matchLabels must match the pod template's labels")
    pod = tmpl["spec"]
    ctrs = [c for c in pod["containers"] if c["name"] == "ctrd"]
    if not check(len(ctrs) == 1, "Deployment needs one container named ctrd"):
        return
    c = ctrs[0]
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    check(ports.get("http") == 8080, "container port named http must be 8080")
    check(exposed == 8080, f"Dockerfile must EXPOSE 8080 (got {exposed})")

    env = {}
    for e in c.get("env", []):
        if "value" in e:
            check(isinstance(e["value"], str), f"env {e['name']}: value must be a string")
            env[e["name"]] = e["value"]
        else:
            env[e["name"]] = e.get("valueFrom")

    def probe(name, path):
        p = c.get(name)
        if not check(p, f"container has no {name}"):
            return
        g = p.get("httpGet") or {}
        check(g.get("path") == path, f"{name} must GET {path} (got {g.get('path')})")
        check(g.get("port") in ("http", 8080), f"{name} port must be http/8080 (got {g.get('port')})")

    probe("readinessProbe", "/readyz")
    probe("livenessProbe", "/healthz")

    # preStop + grace period >= preStop sleep + drain timeout.
    pre = ((c.get("lifecycle") or {}).get("preStop") or {})
    cmd = (pre.get("exec") or {}).get("command") or []
    sleep_s = None
    if pre.get("sleep"):
        sleep_s = int(pre["sleep"]["seconds"])
    elif len(cmd) == 2 and cmd[0] == "sleep" and str(cmd[1]).isdigit():
        sleep_s = int(cmd[1])
    check(sleep_s is not None, "container needs a preStop hook that sleeps (exec [sleep, N] or sleep.seconds)")
    drain = env.get("CTRD_DRAIN_TIMEOUT_S")
    check(isinstance(drain, str) and drain.isdigit(),
          "CTRD_DRAIN_TIMEOUT_S must be set explicitly so the grace period can match it")
    grace = pod.get("terminationGracePeriodSeconds")
    check(isinstance(grace, int), "terminationGracePeriodSeconds must be set")
    if sleep_s is not None and isinstance(drain, str) and drain.isdigit() and isinstance(grace, int):
        need = sleep_s + int(drain)
        check(need < grace <= need + 15,
              f"terminationGracePeriodSeconds {grace} must exceed preStop {sleep_s}s + drain {drain}s "
              f"(= {need}s) by a small margin (<= 15s)")

    res = c.get("resources") or {}
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            check((res.get(kind) or {}).get(r), f"resources.{kind}.{r} must be set")

    psc = pod.get("securityContext") or {}
    csc = c.get("securityContext") or {}
    check(psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True, "runAsNonRoot must be true")
    run_uid = csc.get("runAsUser", psc.get("runAsUser"))
    check(run_uid == uid, f"runAsUser ({run_uid}) must be the image's UID ({uid})")
    check(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem must be true")
    check(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation must be false")
    check("ALL" in ((csc.get("capabilities") or {}).get("drop") or []), "capabilities must drop ALL")
    check(not csc.get("privileged"), "container must not be privileged")

    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    for m in mounts.values():
        check(m["name"] in vols, f"volumeMount {m['name']} has no volume")
    model = env.get("CTRD_MODEL")
    check(isinstance(model, str) and model.startswith("/models/"), "CTRD_MODEL must name a file under /models")
    mm = mounts.get("/models")
    if check(mm, "no volume mounted at /models"):
        check(mm.get("readOnly") is True, "/models must be mounted readOnly")
        v = vols.get(mm["name"], {})
        check("persistentVolumeClaim" in v or "hostPath" in v,
              "/models must come from a PersistentVolumeClaim or hostPath volume")
    check(env.get("CTRD_AUDIT_DIR") == "/audit" and "/audit" in mounts,
          "CTRD_AUDIT_DIR=/audit must be a mounted volume")
    check(env.get("CTRD_NO_AUDIT") is None, "the audit log must stay on in the Deployment")
    # readOnlyRootFilesystem: every other path ctrd may write must be a volume.
    check("/tmp" in mounts, "mount an emptyDir at /tmp (root filesystem is read-only)")

    ann = tmpl["metadata"].get("annotations") or {}
    strings_only("Deployment template annotations", ann)
    check(ann.get("prometheus.io/scrape") == "true", "pod annotation prometheus.io/scrape must be \"true\"")
    check(ann.get("prometheus.io/port") == str(ports.get("http")),
          "pod annotation prometheus.io/port must be the http container port")
    check(ann.get("prometheus.io/path") == "/metrics", "pod annotation prometheus.io/path must be /metrics")

    # Every claim the pod uses is defined.
    pvcs = {d["metadata"]["name"] for _, d in by_kind.get("PersistentVolumeClaim", [])}
    for v in vols.values():
        claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
        if claim:
            check(claim in pvcs, f"volume {v['name']}: claim {claim} not defined in deploy/kubernetes")

    # --- Service ----------------------------------------------------------
    _, svc = by_kind["Service"][0]
    check(subset(svc["spec"].get("selector"), tlabels) and svc["spec"].get("selector"),
          "Service selector must select the Deployment's pods")
    sports = {p.get("name"): p for p in svc["spec"].get("ports", [])}
    sp = sports.get("http")
    if check(sp, "Service needs a port named http"):
        check(sp.get("targetPort") in ("http", 8080), "Service port http must target the container's http port")

    # --- HPA --------------------------------------------------------------
    _, hpa = by_kind["HorizontalPodAutoscaler"][0]
    check(hpa["apiVersion"] == "autoscaling/v2", "HPA apiVersion must be autoscaling/v2")
    ref = hpa["spec"]["scaleTargetRef"]
    check(ref.get("kind") == "Deployment" and ref.get("name") == dep["metadata"]["name"],
          "HPA must target the ctrd Deployment")
    lo, hi = hpa["spec"].get("minReplicas", 1), hpa["spec"].get("maxReplicas")
    check(isinstance(hi, int) and 1 <= lo <= hi, f"HPA replicas must satisfy 1 <= min ({lo}) <= max ({hi})")
    cpu = [m for m in hpa["spec"].get("metrics", [])
           if m.get("type") == "Resource" and (m.get("resource") or {}).get("name") == "cpu"]
    if check(cpu, "HPA must scale on the cpu Resource metric"):
        t = cpu[0]["resource"].get("target") or {}
        check(t.get("type") == "Utilization" and 0 < int(t.get("averageUtilization", 0)) <= 100,
              "HPA cpu target must be a Utilization percentage")

    # --- ServiceMonitor ---------------------------------------------------
    _, sm = by_kind["ServiceMonitor"][0]
    check(sm["apiVersion"] == "monitoring.coreos.com/v1", "ServiceMonitor apiVersion must be monitoring.coreos.com/v1")
    check(subset(sm["spec"]["selector"].get("matchLabels"), svc["metadata"].get("labels") or {})
          and sm["spec"]["selector"].get("matchLabels"),
          "ServiceMonitor selector must match the Service's labels")
    eps = sm["spec"].get("endpoints") or []
    check(any(e.get("port") == "http" and e.get("path") == "/metrics" for e in eps),
          "ServiceMonitor must scrape port http, path /metrics")

    # --- PrometheusRule: the shadow rules, generated from the file promtool
    # checks (tests/test_prom_rules.sh), so the two cannot drift apart ----
    check(len(by_kind.get("PrometheusRule", [])) == 1,
          f"expected exactly one PrometheusRule, found {len(by_kind.get('PrometheusRule', []))}")
    if by_kind.get("PrometheusRule"):
        _, pr = by_kind["PrometheusRule"][0]
        check(pr["apiVersion"] == "monitoring.coreos.com/v1", "PrometheusRule apiVersion must be monitoring.coreos.com/v1")
        src = os.path.join(KDIR, "..", "prometheus", "ctrd-shadow-rules.yaml")
        with open(src) as f:
            rules = yaml.safe_load(f)
        check(pr.get("spec") == rules,
              "PrometheusRule spec differs from deploy/prometheus/ctrd-shadow-rules.yaml: "
              "run python3 scripts/gen_prometheusrule.py")
        groups = (pr.get("spec") or {}).get("groups") or []
        check(any(r.get("alert") == "CtrdShadowPDHigh" for g in groups for r in g.get("rules") or []),
              "PrometheusRule must carry the CtrdShadowPDHigh alert")

    # --- kustomization lists every manifest -------------------------------
    kust = [d for _, d in by_kind.get("Kustomization", [])]
    if kust:
        listed = set(kust[0].get("resources") or [])
        files = {n for n in os.listdir(KDIR) if n.endswith(".yaml") and n != "kustomization.yaml"}
        check(listed == files, f"kustomization.yaml resources {sorted(listed)} != files {sorted(files)}")


if __name__ == "__main__":
    main()
    for f in failures:
        print("FAIL:", f)
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("deploy/kubernetes: all checks passed")
