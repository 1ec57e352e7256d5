#!/usr/bin/env python3
"""Checks on `helm template` output that schemas cannot make (tests/k8s/chart.sh runs it).

Usage: check_render.py RENDERED.yaml [--replicas N]
Fails (exit 1, one line per problem) unless the StatefulSet's pods find each other through
a headless Service that publishes not-ready addresses, probes use /health and /ready, the
container is confined as docs/kubernetes.md says, the secret comes from a Secret, updates
go one pod at a time, and the Services and NetworkPolicy select the StatefulSet's pods.
"""
import argparse
import sys

import yaml


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rendered")
    ap.add_argument("--replicas", type=int)
    a = ap.parse_args()
    with open(a.rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    kinds = {}
    for d in docs:
        kinds.setdefault(d["kind"], []).append(d)
    problems = []

    def need(cond, what):
        if not cond:
            problems.append(what)

    [sts] = kinds["StatefulSet"]
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    [c] = pod["containers"]
    labels = spec["selector"]["matchLabels"]
    ns = sts["metadata"].get("namespace")
    env = {e["name"]: e for e in c["env"]}
    services = {s["metadata"]["name"]: s for s in kinds["Service"]}
    headless = services.get(spec["serviceName"])
    need(headless is not None, f"serviceName {spec['serviceName']} is not a rendered Service")
    if headless:
        need(headless["spec"].get("clusterIP") == "None", "the StatefulSet's Service is not headless")
        need(headless["spec"].get("publishNotReadyAddresses") is True, "headless Service: publishNotReadyAddresses is not true")
        need(headless["spec"]["selector"] == labels, "headless Service does not select the pods")
        domain = env.get("DISCOVERY_DOMAIN", {}).get("value", "")
        need(domain.startswith(spec["serviceName"] + "."), f"DISCOVERY_DOMAIN={domain} is not the headless Service")
    need(spec.get("podManagementPolicy") == "Parallel", "podManagementPolicy is not Parallel")
    need(spec["updateStrategy"]["type"] == "RollingUpdate", "updateStrategy is not RollingUpdate")
    need(spec["updateStrategy"].get("rollingUpdate", {}).get("maxUnavailable", 1) == 1, "updates are not one pod at a time")
    if a.replicas is not None:
        need(spec["replicas"] == a.replicas, f"replicas {spec['replicas']}, expected {a.replicas}")
    ports = [p["containerPort"] for p in c["ports"]]
    base, count = int(env["BASE_PORT"]["value"]), int(env["MAX_PORTS"]["value"])
    need(ports == list(range(base, base + count)), f"container ports {ports} are not BASE_PORT..+MAX_PORTS")
    need(int(env["NODE_COUNT"]["value"]) <= count, "NODE_COUNT exceeds MAX_PORTS")
    need(c["livenessProbe"]["httpGet"]["path"] == "/health", "liveness is not /health")
    need(c["readinessProbe"]["httpGet"]["path"] == "/ready", "readiness is not /ready")
    need(env.get("ADVERTISE_HOST", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP",
         "ADVERTISE_HOST is not the pod IP")
    sc = c["securityContext"]
    need(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 10001, "not running as uid 10001")
    need(sc.get("readOnlyRootFilesystem") is True, "root filesystem writable")
    need(sc.get("allowPrivilegeEscalation") is False, "privilege escalation allowed")
    need(sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities not dropped")
    need(pod.get("automountServiceAccountToken") is False, "service account token mounted")
    need(pod.get("enableServiceLinks") is False, "service links enabled")
    need("volumeClaimTemplates" not in spec, "persistence: data is ephemeral by design")
    secret_env = env.get("REPRAM_CLUSTER_SECRET")
    if secret_env:
        need("value" not in secret_env, "REPRAM_CLUSTER_SECRET given as a plain value")
        need("secretKeyRef" in secret_env.get("valueFrom", {}), "REPRAM_CLUSTER_SECRET not from a Secret")
    need("REPRAM_TRUST_PROXY" not in env, "REPRAM_TRUST_PROXY is replaced by REPRAM_TRUSTED_PROXIES")
    clients = [s for n, s in services.items() if n != spec["serviceName"]]
    need(len(clients) == 1 and clients[0]["spec"]["selector"] == labels, "no client Service selecting the pods")
    for np in kinds.get("NetworkPolicy", []):
        need(np["spec"]["podSelector"]["matchLabels"] == labels, "NetworkPolicy does not select the pods")
        rules = np["spec"]["ingress"]
        own = [r for r in rules if r.get("from") == [{"podSelector": {"matchLabels": labels}}]]
        need(own and sorted(p["port"] for p in own[0]["ports"]) == ports, "node ports not admitted from the app's own pods")
        for r in rules:
            extra = [p["port"] for p in r.get("ports", []) if p["port"] != base]
            need(r in own or not extra, f"node ports {extra} admitted from others than the app's pods")
    for pdb in kinds.get("PodDisruptionBudget", []):
        need(pdb["spec"]["selector"]["matchLabels"] == labels, "PodDisruptionBudget does not select the pods")
    for ing in kinds.get("Ingress", []):
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                name = p["backend"]["service"]["name"]
                need(clients and name == clients[0]["metadata"]["name"], f"Ingress backend {name} is not the client Service")
    for p in problems:
        print(f"check_render: {a.rendered}: {p}")
    if not problems:
        print(f"check_render: {a.rendered}: ok ({', '.join(sorted(kinds))})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
