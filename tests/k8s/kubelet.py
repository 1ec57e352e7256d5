#!/usr/bin/env python3
"""Runs the pods of a rendered repram-flux chart the way Kubernetes would, without a cluster.

Started by tests/k8s/pods.sh inside a private network and mount namespace of its own (so
nothing it creates is visible outside, and nothing it sends can leave). It plays:

- the API server: the StatefulSet, its headless Service and the Secrets, from `helm template`;
- the container runtime: one network namespace per pod (`k8s-<pod>`) on a bridge (the node),
  a fresh address per pod incarnation, the container's env resolved as the kubelet does
  (values, `fieldRef: status.podIP`, `secretKeyRef`), its securityContext applied (uid/gid,
  no new privileges, every capability dropped, read-only root filesystem), SIGTERM after the
  preStop hook and SIGKILL at the end of the grace period;
- cluster DNS: the headless Service name (DISCOVERY_DOMAIN) resolving to every pod that exists,
  ready or not (publishNotReadyAddresses), through each pod's private /etc/hosts;
- the kubelet's probers: startup, then liveness and readiness, with the rendered periods,
  timeouts and thresholds;
- the client Service (kube-proxy): each client connection goes to a Ready pod that is not
  terminating, as seen through an endpoint update lag;
- the StatefulSet controller: pods created in parallel (podManagementPolicy Parallel), then a
  rolling update to a second rendering: highest ordinal first, each pod deleted, recreated
  and Ready for minReadySeconds before the next one.

Checks: every pod Ready; a write on one pod read on all; a writer through the client Service
during the rolling update; afterwards every acknowledged (201) write readable on every pod;
every pod running the new revision; every stop a clean exit 0 within its grace period; no
probe-triggered restart. Prints the counts and `k8s-pods: N passed, 0 failed`.
"""

import argparse
import base64
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import yaml

T0 = time.monotonic()
BRIDGE = "k8s-node"
SUBNET = "10.244.0"
NODE_IP = f"{SUBNET}.254"
# How long the client Service keeps sending to a pod after it starts terminating (endpoint
# propagation); the preStop sleep is what covers it.
ENDPOINT_LAG = 1.0
NAMESPACE = "fade"
LOCK = threading.Lock()


def log(msg):
    with LOCK:
        print(f"k8s-pods: [{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


class Fail(Exception):
    pass


def sh(*args, check=True):
    r = subprocess.run(args, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise Fail(f"{' '.join(args)}: {r.stderr.strip()}")
    return r


def request(ip, port, method, path, body=None, timeout=2.0):
    """(status, body bytes); status 0 on a connection error."""
    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException):
        return 0, b""
    finally:
        conn.close()


def wait_for(secs, what, cond, step=0.2):
    deadline = time.monotonic() + secs
    while True:
        if cond():
            return
        if time.monotonic() > deadline:
            raise Fail(f"timed out after {secs} s waiting for {what}")
        time.sleep(step)


class Rendering:
    """The objects of one `helm template` output that the pods need."""

    def __init__(self, path):
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        by_kind = {}
        for d in docs:
            by_kind.setdefault(d["kind"], []).append(d)
        [self.sts] = by_kind["StatefulSet"]
        self.services = by_kind.get("Service", [])
        self.secrets = {s["metadata"]["name"]: s for s in by_kind.get("Secret", [])}
        spec = self.sts["spec"]
        self.name = self.sts["metadata"]["name"]
        self.replicas = spec["replicas"]
        self.pod_spec = spec["template"]["spec"]
        [self.container] = self.pod_spec["containers"]
        self.revision = json.dumps(spec["template"], sort_keys=True)
        headless = [s for s in self.services if s["metadata"]["name"] == spec["serviceName"]]
        if len(headless) != 1 or headless[0]["spec"].get("clusterIP") != "None":
            raise Fail(f"serviceName {spec['serviceName']} is not a rendered headless Service")
        self.headless = headless[0]
        if not self.headless["spec"].get("publishNotReadyAddresses"):
            raise Fail("the headless Service must publish not-ready addresses (joining pods)")
        self.ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        strategy = spec.get("updateStrategy", {})
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            raise Fail(f"updateStrategy {strategy} is not RollingUpdate")
        self.partition = strategy.get("rollingUpdate", {}).get("partition", 0)
        self.min_ready = spec.get("minReadySeconds", 0)
        self.policy = spec.get("podManagementPolicy", "OrderedReady")

    def headless_fqdn(self):
        return f"{self.headless['metadata']['name']}.{NAMESPACE}.svc.cluster.local"


class Cluster:
    """API server state shared by the controller, the probers and the client Service."""

    def __init__(self, binary, workdir):
        self.binary = binary
        self.work = workdir
        self.pods = {}  # name -> Pod (pods that exist, terminating ones included)
        self.secrets = {}  # name -> {key: bytes}; the first rendering's generated ones stay
        self.next_ip = 1
        self.fqdn = None
        self.image_env = {}

    def apply_secrets(self, rendering):
        for name, s in rendering.secrets.items():
            if name in self.secrets:
                continue  # what the chart's `lookup` does in a real cluster
            self.secrets[name] = {k: base64.b64decode(v) for k, v in s.get("data", {}).items()}

    def alloc_ip(self):
        ip = f"{SUBNET}.{self.next_ip}"
        self.next_ip += 1
        if self.next_ip >= 250:
            raise Fail("out of pod addresses")
        return ip

    def write_hosts(self):
        """Cluster DNS: each pod's /etc/hosts, rewritten in place (the bind mount keeps the inode)."""
        with LOCK:
            pods = sorted(self.pods.values(), key=lambda p: p.name)
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost"]
        for p in pods:
            lines.append(f"{p.ip} {p.name}.{self.fqdn} {p.name}")
        for p in pods:
            lines.append(f"{p.ip} {self.fqdn}")
        text = "\n".join(lines) + "\n"
        for p in pods:
            path = f"/etc/netns/{p.netns}/hosts"
            with open(path, "r+" if os.path.exists(path) else "w") as f:
                f.seek(0)
                f.write(text)
                f.truncate()

    def client_endpoints(self):
        """The client Service: Ready pods, minus those terminating for longer than the lag."""
        now = time.monotonic()
        with LOCK:
            return [
                p
                for p in self.pods.values()
                if p.ready and (p.terminating_at is None or now - p.terminating_at < ENDPOINT_LAG)
            ]


class Pod:
    def __init__(self, cluster, rendering, ordinal):
        self.cluster = cluster
        self.r = rendering
        self.ordinal = ordinal
        self.name = f"{rendering.name}-{ordinal}"
        self.netns = f"k8s-{self.name}"
        self.revision = rendering.revision
        self.ip = cluster.alloc_ip()
        self.port = rendering.ports["node-0"]
        self.proc = None
        self.started = False
        self.ready = False
        self.ready_since = None
        self.terminating_at = None
        self.restarts = 0
        self.stop = threading.Event()
        self.gen = 0
        self.log_path = None

    # ---- the container runtime
    def sandbox(self):
        host_if = f"k8s-v{self.ip.rsplit('.', 1)[1]}"  # unique per incarnation
        sh("ip", "netns", "add", self.netns)
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        sh("ip", "link", "set", host_if, "master", BRIDGE, "up")
        sh("ip", "-n", self.netns, "addr", "add", f"{self.ip}/24", "dev", "eth0")
        sh("ip", "-n", self.netns, "link", "set", "eth0", "up")
        sh("ip", "-n", self.netns, "link", "set", "lo", "up")
        os.makedirs(f"/etc/netns/{self.netns}", exist_ok=True)
        with LOCK:
            self.cluster.pods[self.name] = self
        self.cluster.write_hosts()

    def env(self):
        # The image's ENV first (the container runtime), then the pod's env over it.
        out = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               **self.cluster.image_env, "HOSTNAME": self.name}
        for e in self.r.container.get("env", []):
            if "value" in e:
                out[e["name"]] = str(e["value"])
                continue
            src = e["valueFrom"]
            if "fieldRef" in src:
                field = src["fieldRef"]["fieldPath"]
                known = {"status.podIP": self.ip, "metadata.name": self.name, "metadata.namespace": NAMESPACE}
                if field not in known:
                    raise Fail(f"env {e['name']}: fieldRef {field} not modelled")
                out[e["name"]] = known[field]
            elif "secretKeyRef" in src:
                ref = src["secretKeyRef"]
                secret = self.cluster.secrets.get(ref["name"])
                if secret is None or ref["key"] not in secret:
                    raise Fail(f"env {e['name']}: Secret {ref['name']} key {ref['key']} does not exist")
                out[e["name"]] = secret[ref["key"]].decode()
            else:
                raise Fail(f"env {e['name']}: valueFrom {list(src)} not modelled")
        return out

    def security(self):
        """setpriv arguments and the read-only root flag from the rendered securityContext."""
        pod_sc = self.r.pod_spec.get("securityContext", {})
        sc = {**pod_sc, **self.r.container.get("securityContext", {})}
        uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
        if sc.get("runAsNonRoot") and not uid:
            raise Fail("runAsNonRoot without a numeric runAsUser: the kubelet would refuse the image's user")
        args = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
        if sc.get("allowPrivilegeEscalation") is False:
            args.append("--no-new-privs")
        if "ALL" in sc.get("capabilities", {}).get("drop", []):
            args += ["--inh-caps=-all", "--bounding-set=-all"]
        return args, bool(sc.get("readOnlyRootFilesystem"))

    def start_container(self):
        self.gen += 1
        self.log_path = os.path.join(self.cluster.work, f"{self.name}.{self.ip}.{self.gen}.log")
        priv, ro = self.security()
        env = [f"{k}={v}" for k, v in self.env().items()]
        # `ip netns exec` gives the process its own mount namespace with the pod's hosts
        # file bound over /etc/hosts; there the root filesystem is made read-only.
        script = ('mount -o remount,bind,ro / && ' if ro else '') + 'exec "$@"'
        cmd = ["ip", "netns", "exec", self.netns, "sh", "-c", script, "sh", *priv, "env", "-i", *env, self.cluster.binary]
        with open(self.log_path, "w") as logf:
            self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.started = False
        self.ready = False
        self.ready_since = None
        self.started_at = time.monotonic()

    def stop_container(self, reason):
        """preStop hook, SIGTERM, SIGKILL at the end of the grace period; returns (exit code, seconds)."""
        grace = self.r.pod_spec.get("terminationGracePeriodSeconds", 30)
        t0 = time.monotonic()
        pre = self.r.container.get("lifecycle", {}).get("preStop", {})
        if pre:
            cmd = pre.get("exec", {}).get("command", [])
            if cmd[:1] != ["sleep"] or len(cmd) != 2:
                raise Fail(f"preStop {pre} not modelled (only exec sleep N)")
            # Runs in the container, which keeps serving meanwhile.
            sh("ip", "netns", "exec", self.netns, *cmd)
        term_at = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=max(0.0, grace - (term_at - t0)))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
            log(f"{self.name}: SIGKILL after the {grace} s grace period ({reason})")
        return code, time.monotonic() - term_at

    def delete(self):
        self.stop.set()
        self.prober.join()
        with LOCK:
            del self.cluster.pods[self.name]
        self.cluster.write_hosts()
        sh("ip", "netns", "del", self.netns)

    # ---- the kubelet's probers
    def probe(self, spec):
        get = spec["httpGet"]
        port = get["port"]
        port = self.r.ports[port] if isinstance(port, str) else port
        status, _ = request(self.ip, port, "GET", get["path"], timeout=spec.get("timeoutSeconds", 1))
        return 200 <= status < 400

    def run_probers(self):
        c = self.r.container
        startup, live, ready = c.get("startupProbe"), c["livenessProbe"], c["readinessProbe"]
        fails = {"startup": 0, "live": 0, "ready": 0}
        ok_ready = 0
        nxt = {"startup": time.monotonic() + (startup or {}).get("initialDelaySeconds", 0)}
        if not startup:
            self.started = True
        while not self.stop.is_set():
            now = time.monotonic()
            if self.proc.poll() is not None and self.terminating_at is None:
                log(f"{self.name}: container exited {self.proc.returncode} unasked; restarting")
                self.restarts += 1
                self.start_container()
                nxt = {"startup": time.monotonic()}
                continue
            if not self.started:
                if now >= nxt["startup"]:
                    nxt["startup"] = now + startup.get("periodSeconds", 10)
                    if self.probe(startup):
                        self.started = True
                        log(f"{self.name}: started (startup probe /health passed)")
                        nxt["live"] = now + live.get("initialDelaySeconds", 0) + live.get("periodSeconds", 10)
                        nxt["ready"] = now + ready.get("initialDelaySeconds", 0)
                    else:
                        fails["startup"] += 1
                        if fails["startup"] >= startup.get("failureThreshold", 3):
                            raise Fail(f"{self.name}: startup probe failed {fails['startup']} times")
            else:
                if now >= nxt["live"]:
                    nxt["live"] = now + live.get("periodSeconds", 10)
                    if self.probe(live):
                        fails["live"] = 0
                    else:
                        fails["live"] += 1
                        if fails["live"] >= live.get("failureThreshold", 3) and self.terminating_at is None:
                            log(f"{self.name}: liveness failed {fails['live']} times; restarting the container")
                            self.restarts += 1
                            self.stop_container("liveness")
                            self.start_container()
                            fails = {"startup": 0, "live": 0, "ready": 0}
                            nxt = {"startup": time.monotonic()}
                            continue
                if now >= nxt["ready"]:
                    nxt["ready"] = now + ready.get("periodSeconds", 10)
                    if self.probe(ready):
                        fails["ready"] = 0
                        ok_ready += 1
                        if not self.ready and ok_ready >= ready.get("successThreshold", 1):
                            with LOCK:
                                self.ready, self.ready_since = True, time.monotonic()
                            log(f"{self.name}: Ready (/ready 200) on {self.ip}")
                    else:
                        ok_ready = 0
                        fails["ready"] += 1
                        if self.ready and fails["ready"] >= ready.get("failureThreshold", 3):
                            with LOCK:
                                self.ready, self.ready_since = False, None
                            log(f"{self.name}: NotReady (/ready failed {fails['ready']} times)")
            time.sleep(0.05)

    def run(self):
        """Create the pod: sandbox, container, probers."""
        self.sandbox()
        self.start_container()
        log(f"{self.name}: created on {self.ip}")
        self.prober = threading.Thread(target=self.guard, daemon=True)
        self.prober.start()

    def guard(self):
        try:
            self.run_probers()
        except Fail as e:
            self.error = str(e)
            log(f"FAIL: {e}")

    def available(self):
        return self.ready and time.monotonic() - self.ready_since >= self.r.min_ready


class Writer(threading.Thread):
    """A client writing through the client Service; remembers what was acknowledged."""

    def __init__(self, cluster, port, rate):
        super().__init__(daemon=True)
        self.cluster, self.port, self.gap = cluster, port, 1.0 / rate
        self.halt = threading.Event()
        self.counts = {}
        self.acked = {}  # key -> value, for 201
        self.accepted = {}  # key -> value, for 202

    def run(self):
        i = 0
        while not self.halt.is_set() and i < 100000:
            i += 1
            eps = self.cluster.client_endpoints()
            if not eps:
                self.counts["no endpoint"] = self.counts.get("no endpoint", 0) + 1
                time.sleep(self.gap)
                continue
            pod = random.choice(eps)
            key, value = f"roll-{i:06d}", f"v{i}-{random.getrandbits(32):08x}"
            status, _ = request(pod.ip, self.port, "PUT", f"/data/{key}?ttl=3600", body=value.encode())
            label = str(status) if status else "connection error"
            self.counts[label] = self.counts.get(label, 0) + 1
            if status == 201:
                self.acked[key] = value
            elif status == 202:
                self.accepted[key] = value
            time.sleep(self.gap)


def net_setup():
    os.makedirs("/run/netns", exist_ok=True)
    os.makedirs("/etc/netns", exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", "size=1m", "k8s-netns", "/run/netns")
    sh("mount", "-t", "tmpfs", "-o", "size=1m", "k8s-etc", "/etc/netns")
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")


def cleanup(cluster):
    for p in list(cluster.pods.values()):
        p.stop.set()
        if p.proc and p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
        sh("ip", "netns", "del", p.netns, check=False)


def check_confined(pod):
    """The securityContext, as the kernel sees the running binary (the exec chain keeps its pid)."""
    with open(f"/proc/{pod.proc.pid}/status") as f:
        st = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    uid = st["Uid"].split()
    if uid[0] != "10001" or st["Gid"].split()[0] != "10001":
        raise Fail(f"{pod.name}: runs as uid {uid[0]} gid {st['Gid'].split()[0]}, expected 10001")
    if int(st["CapEff"], 16) or int(st["CapBnd"], 16) or st.get("NoNewPrivs", "0").strip() != "1":
        raise Fail(f"{pod.name}: CapEff {st['CapEff']} CapBnd {st['CapBnd']} NoNewPrivs {st.get('NoNewPrivs')}")
    with open(f"/proc/{pod.proc.pid}/mountinfo") as f:
        root = [line.split() for line in f if line.split()[4] == "/"]
    if not root or "ro" not in root[-1][5].split(","):
        raise Fail(f"{pod.name}: the root filesystem is not read-only: {root}")


def image_env(dockerfile):
    """The ENV of a Dockerfile's last stage, as the image config carries it (KEY=value form)."""
    with open(dockerfile) as f:
        text = f.read().replace("\\\n", " ")
    env = {}
    for line in text.splitlines():
        words = line.split()
        if words and words[0].upper() == "FROM":
            env = {}
        elif words and words[0].upper() == "ENV":
            for pair in words[1:]:
                key, sep, value = pair.partition("=")
                if not sep:
                    raise Fail(f"{dockerfile}: ENV {pair}: only the KEY=value form is modelled")
                env[key] = value
    return env


def readback(pod, acked, secs):
    """Every acknowledged key reads back its value on `pod` within `secs`, else Fail."""
    missing = dict(acked)

    def all_there():
        for key, value in list(missing.items()):
            status, body = request(pod.ip, pod.port, "GET", f"/data/{key}")
            if status == 200 and body == value.encode():
                del missing[key]
            elif status == 429:
                return False
        return not missing

    try:
        wait_for(secs, f"every acknowledged write on {pod.name}", all_there, step=0.5)
    except Fail:
        raise Fail(f"{pod.name} lacks {len(missing)} of {len(acked)} acknowledged writes, "
                   f"e.g. {sorted(missing)[:3]}") from None


def count_peers(pod):
    status, body = request(pod.ip, pod.port, "GET", "/peers")
    try:
        return len(json.loads(body)["peers"]) if status == 200 else -1
    except ValueError:
        return -1


def find_key(obj, key):
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            found = find_key(v, key)
            if found is not None:
                return found
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--v1", required=True, help="helm template output to install")
    ap.add_argument("--v2", required=True, help="helm template output to roll out")
    ap.add_argument("--secret", action="append", default=[], help="NAME=KEY=VALUE: a Secret made outside the chart")
    ap.add_argument("--expect", action="append", default=[], help="VAR=VALUE that /status shows after the update")
    ap.add_argument("--work", required=True)
    ap.add_argument("--dockerfile", help="the image's Dockerfile, for its ENV")
    ap.add_argument("--rate", type=float, default=25.0, help="writes per second during the update")
    a = ap.parse_args()

    v1, v2 = Rendering(a.v1), Rendering(a.v2)
    if v1.revision == v2.revision:
        raise Fail("the second rendering changes nothing in the pod template: no rolling update")
    cluster = Cluster(a.bin, a.work)
    cluster.fqdn = v1.headless_fqdn()
    if a.dockerfile:
        cluster.image_env = image_env(a.dockerfile)
        log(f"image ENV: {len(cluster.image_env)} variables from {a.dockerfile}, under the pod's env")
    for s in a.secret:
        name, key, value = s.split("=", 2)
        cluster.secrets.setdefault(name, {})[key] = value.encode()
    cluster.apply_secrets(v1)
    passed = 0
    net_setup()
    try:
        disc = {e["name"]: e.get("value") for e in v1.container["env"]}
        if disc.get("DISCOVERY_DOMAIN") != cluster.fqdn:
            raise Fail(f"DISCOVERY_DOMAIN={disc.get('DISCOVERY_DOMAIN')} is not the headless Service {cluster.fqdn}")
        log(f"StatefulSet {v1.name}: {v1.replicas} pods, podManagementPolicy {v1.policy}, "
            f"DISCOVERY_DOMAIN={cluster.fqdn}, ports {sorted(v1.ports.values())}, "
            f"NODE_COUNT={disc.get('NODE_COUNT')}, minReadySeconds {v1.min_ready}")
        # ---- install: Parallel creates every pod at once; OrderedReady one after another.
        pods = [Pod(cluster, v1, i) for i in range(v1.replicas)]
        for p in pods:
            p.run()
            if v1.policy == "OrderedReady":
                wait_for(90, f"{p.name} Ready", lambda p=p: p.ready)
        wait_for(90, "every pod Ready", lambda: all(p.ready for p in pods))
        want = v1.replicas * int(disc.get("NODE_COUNT") or 1) - 1
        wait_for(30, f"every node to see {want} peers", lambda: all(count_peers(p) == want for p in pods))
        log(f"PASS all {len(pods)} pods Ready, each node sees {want} peers through {cluster.fqdn}")
        passed += 1
        for p in pods:
            check_confined(p)
        log("PASS every container runs as uid 10001 with no capabilities, no new privileges, "
            "and a read-only root filesystem")
        passed += 1

        # ---- a write on one pod, read on all
        status, _ = request(pods[0].ip, pods[0].port, "PUT", "/data/k8s-hello?ttl=600", body=b"from-pod-0")
        if status != 201:
            raise Fail(f"PUT on {pods[0].name} answered {status}, expected 201")
        for p in pods:
            wait_for(10, f"k8s-hello on {p.name}",
                     lambda p=p: request(p.ip, p.port, "GET", "/data/k8s-hello") == (200, b"from-pod-0"))
        log(f"PASS a write on {pods[0].name} (201) is read on every pod")
        passed += 1

        # ---- rolling update under a writer
        cluster.apply_secrets(v2)
        writer = Writer(cluster, v1.ports["node-0"], a.rate)
        writer.start()
        time.sleep(2)  # some writes before the first pod goes
        t_roll = time.monotonic()
        stops = []
        for ordinal in range(v2.replicas - 1, v2.partition - 1, -1):
            old = cluster.pods[f"{v2.name}-{ordinal}"]
            if old.revision == v2.revision:
                continue
            # The controller waits for every pod to be Running and Ready before it goes on.
            wait_for(120, "every pod Ready before the next update",
                     lambda: all(p.ready for p in cluster.pods.values()))
            with LOCK:
                old.terminating_at = time.monotonic()
            log(f"{old.name}: Terminating (update to the new revision); preStop then SIGTERM")
            code, secs = old.stop_container("rolling update")
            stops.append((old.name, code, secs))
            log(f"{old.name}: exited {code} {secs:.1f} s after SIGTERM; pod deleted")
            old.delete()
            new = Pod(cluster, v2, ordinal)
            new.run()
            wait_for(120, f"{new.name} Ready and available for {v2.min_ready} s", new.available, step=0.1)
            log(f"{new.name}: available (Ready for minReadySeconds={v2.min_ready})")
        roll_secs = time.monotonic() - t_roll
        time.sleep(2)  # and some after the last one
        writer.halt.set()
        writer.join()
        log(f"rolling update done in {roll_secs:.1f} s; writes through the client Service: "
            + ", ".join(f"{k}: {v}" for k, v in sorted(writer.counts.items())))
        bad = [s for s in stops if s[1] != 0]
        if bad:
            raise Fail(f"pods did not exit cleanly on SIGTERM: {bad}")
        log(f"PASS every old pod exited 0 after SIGTERM (longest {max(s[2] for s in stops):.1f} s; "
            f"grace {v1.pod_spec.get('terminationGracePeriodSeconds', 30)} s)")
        passed += 1

        # ---- every acknowledged write readable on every pod
        final = sorted(cluster.pods.values(), key=lambda p: p.ordinal)
        if not writer.acked:
            raise Fail("no write was acknowledged during the update")
        for p in final:
            readback(p, writer.acked, 60)
            log(f"{p.name} ({p.ip}) holds {len(writer.acked)}/{len(writer.acked)} acknowledged writes")
        accepted_kept = sum(
            1 for k, v in writer.accepted.items()
            if all(request(p.ip, p.port, "GET", f"/data/{k}") == (200, v.encode()) for p in final))
        log(f"PASS acknowledged (201) writes kept on every pod: {len(writer.acked)}/{len(writer.acked)}"
            f" (202 accepted: {len(writer.accepted)}, of them on every pod: {accepted_kept})")
        passed += 1

        # ---- every pod runs the new revision, none was restarted by a probe
        for p in final:
            if p.revision != v2.revision:
                raise Fail(f"{p.name} still runs the old revision")
            status, body = request(p.ip, p.port, "GET", "/status")
            config = json.loads(body) if status == 200 else {}
            for exp in a.expect:
                var, value = exp.split("=", 1)
                got = find_key(config, var)
                if str(got).lower() != value.lower():
                    raise Fail(f"{p.name}: /status shows {var}={got}, expected {value}")
        restarts = sum(p.restarts for p in final)
        errors = [getattr(p, "error", None) for p in final if getattr(p, "error", None)]
        if restarts or errors:
            raise Fail(f"probe restarts {restarts}, prober errors {errors}")
        log(f"PASS every pod runs the new revision ({', '.join(a.expect) or 'template changed'}), "
            f"0 restarts")
        passed += 1
        # ---- the readback check bites: every pod deleted at once (data lives only in memory)
        for p in final:
            with LOCK:
                p.terminating_at = time.monotonic()
        for p in final:
            p.proc.send_signal(signal.SIGTERM)
        for p in final:
            p.proc.wait(timeout=30)
            p.delete()
        fresh = [Pod(cluster, v2, i) for i in range(v2.replicas)]
        for p in fresh:
            p.run()
        wait_for(90, "every recreated pod Ready", lambda: all(p.ready for p in fresh))
        try:
            readback(fresh[0], writer.acked, 3)
        except Fail as e:
            log(f"PASS the readback check bites: after deleting every pod at once, {e}")
        else:
            raise Fail("the acknowledged writes survived deleting every pod at once: the readback check cannot fail")
        passed += 1
        print(f"k8s-pods: {passed} passed, 0 failed", flush=True)
        return 0
    except Fail as e:
        log(f"FAIL: {e}")
        for p in list(cluster.pods.values()):
            if p.log_path and os.path.exists(p.log_path):
                with open(p.log_path) as f:
                    tail = f.readlines()[-15:]
                print(f"--- {p.log_path} (last lines)\n" + "".join(tail), file=sys.stderr)
        print(f"k8s-pods: {passed} passed, 1 failed", flush=True)
        return 1
    finally:
        cleanup(cluster)


if __name__ == "__main__":
    sys.exit(main())
