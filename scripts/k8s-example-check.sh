#!/usr/bin/env bash
# Checks deploy/kubernetes/sidecar.yaml against the binary the image ships, without a cluster:
#   - the pod spec: credgate is a native sidecar (an init container with restartPolicy: Always) with a startup
#     probe, terminationGracePeriodSeconds is above shutdown.delay + shutdown.grace of its config, the Prometheus
#     annotations point at a listener that is on 0.0.0.0 and at /credgate/metrics, the probes use that port, and
#     the app waits for /credgate/readiness before its first call;
#   - the ConfigMap's files pass `credgate check-config`, and `credgate serve` runs them as the container would
#     (its command and args, the image's ENV, the Deployment's env with the secrets' files): the API listeners are
#     bound to 127.0.0.1 only, the admin listener to 0.0.0.0, and through the admin listener, at the machine's
#     own non-loopback address as Prometheus would reach the pod's IP, GET /credgate/metrics answers Prometheus
#     text, /api/... answers 404 (no credential, nothing forwarded), and SIGTERM exits 0.
# The files' ports (8080, 8081, 9090) are replaced by free ones, and ASSURED_BASE_URL points at a `credgate
# sandbox` started here. Prints `k8s-example-check: N passed, M failed`; exits 1 if anything failed.
#   scripts/k8s-example-check.sh [path/to/credgate]   (default: scripts/shipped-build.sh's binary)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
BIN=${1:-}
[[ -n $BIN ]] || BIN=$(shipped_binary "$ROOT") || exit 1
[[ -x $BIN ]] || { echo "no binary at $BIN"; exit 1; }
SPEC=${K8S_SPEC:-$ROOT/deploy/kubernetes/sidecar.yaml}
start_work
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
echo "k8s-example-check: $SPEC with $BIN"

# ---------------------------------------------------------------------------------------------- the spec
if ! python3 -c 'import yaml' 2>/dev/null; then
    echo "k8s-example-check: SKIPPED: python3 has no yaml module (PyYAML; Debian: python3-yaml) to read the manifests"
    exit 0
fi
# Python (PyYAML, or the metrics venv's) reads the manifests and writes what the shell needs.
PORTS=(); for _ in 1 2 3; do PORTS+=("$(free_port)"); done
python3 - "$SPEC" "$WORK" "${PORTS[@]}" >"$WORK/spec.out" <<'PY' || { cat "$WORK/spec.out"; fail "the manifests parse"; echo "k8s-example-check: $PASSED passed, $FAILED failed"; exit 1; }
import json, re, shlex, sys
import yaml
spec, work, free = sys.argv[1], sys.argv[2], sys.argv[3:]
docs = [d for d in yaml.safe_load_all(open(spec)) if d]
cm = next(d for d in docs if d["kind"] == "ConfigMap")
dep = next(d for d in docs if d["kind"] == "Deployment")
pod = dep["spec"]["template"]
podspec = pod["spec"]
side = next(c for c in podspec.get("initContainers", []) if c["name"] == "credgate")
app = podspec["containers"][0]
out = {}
def say(k, v): out[k] = v

# Ports of the files -> free ones, consistently in the annotations and probes.
mapping = {}
files = {}
for name, text in cm["data"].items():
    m = re.search(r"^listen:\n(?:  .*\n)*?  port: (\d+)", text, re.M)
    port = int(m.group(1))
    mapping[port] = int(free[len(mapping)])
    files[name] = text.replace(f"port: {port}", f"port: {mapping[port]}", 1)
    open(f"{work}/{name}", "w").write(files[name])
say("files", " ".join(sorted(files)))
hosts = {name: re.search(r"^  host: (\S+)", t, re.M).group(1) for name, t in files.items()}
ports = {name: int(re.search(r"^  port: (\d+)", t, re.M).group(1)) for name, t in files.items()}
say("hosts", " ".join(f"{n}={hosts[n]}:{ports[n]}" for n in sorted(files)))

ann = pod["metadata"].get("annotations", {})
scrape_port = int(ann.get("prometheus.io/port", "0"))
admin_files = [n for n in files if hosts[n] == "0.0.0.0"]
say("native_sidecar", side.get("restartPolicy") == "Always")
say("startup_probe", "startupProbe" in side)
say("scrape", ann.get("prometheus.io/scrape") == "true")
say("scrape_path", ann.get("prometheus.io/path", ""))
say("scrape_port_file", next((n for n in files if mapping.get(scrape_port) == ports[n]), ""))
say("admin_files", " ".join(admin_files))
say("admin_port", mapping.get(scrape_port, 0))
say("scrape_port", scrape_port)
named = {p["name"]: p["containerPort"] for p in side.get("ports", [])}
probe_ports = set()
for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
    p = side.get(probe, {})
    if "httpGet" in p:
        port = p["httpGet"]["port"]
        probe_ports.add(named.get(port, port))
    else:
        probe_ports.add("exec")
say("probe_ports", " ".join(str(p) for p in sorted(probe_ports, key=str)))
# The drain budget: shutdown.delay + shutdown.grace of the config, against the pod's grace period.
def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m)", text)
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]
delay = grace = None
for t in files.values():
    m = re.search(r"^shutdown:\n((?:  .*\n)+)", t, re.M)
    if m:
        d = re.search(r"delay: (\S+)", m.group(1)); g = re.search(r"grace: (\S+)", m.group(1))
        delay = seconds(d.group(1)) if d else 0
        grace = seconds(g.group(1)) if g else 25
say("drain", f"{(delay or 0) + (grace if grace is not None else 25):g}")
say("termination", podspec.get("terminationGracePeriodSeconds", 30))
app_script = " ".join(app.get("command", []) + app.get("args", []))
say("app_waits", "credgate wait" in app_script or "/credgate/readiness" in app_script)
# How the container runs: command + args, the image's ENV with the Deployment's env on top.
env = {e["name"]: e.get("value", "") for e in side.get("env", [])}
say("command", " ".join(shlex.quote(w) for w in side.get("command", []) + side.get("args", [])))
say("config_env", env.get("CREDGATE_CONFIG", ""))
say("env_names", " ".join(sorted(env)))
for k, v in out.items():
    print(f"{k}={shlex.quote(str(v))}")
PY
# shellcheck disable=SC1090,SC1091
source "$WORK/spec.out"
echo "  listeners: $hosts"
check "credgate is a native sidecar (initContainers, restartPolicy: Always) with a startupProbe" \
    test "$native_sidecar" = True -a "$startup_probe" = True
check "terminationGracePeriodSeconds ($termination s) is above shutdown.delay + shutdown.grace ($drain s)" \
    awk -v t="$termination" -v d="$drain" 'BEGIN { exit !(t > d) }'
check "the app waits for credgate's readiness (credgate wait or /credgate/readiness) before its first call" test "$app_waits" = True
check "Prometheus annotations: prometheus.io/scrape \"true\", path /credgate/metrics ($scrape_path)" \
    test "$scrape" = True -a "$scrape_path" = /credgate/metrics
check "  ... and prometheus.io/port is the listener of ${scrape_port_file:-no file}, bound to 0.0.0.0 (the pod's IP)" \
    test -n "$scrape_port_file" -a "$admin_files" = "$scrape_port_file"
check "the kubelet's probes are httpGet on that port ($probe_ports)" test "$probe_ports" = "$scrape_port"
only_admin_public() { local n; for n in $files; do [[ $n == "$admin_files" ]] || grep -q '^  host: 127.0.0.1$' "$WORK/$n" || return 1; done; }
check "every other listener is on 127.0.0.1" only_admin_public

# ---------------------------------------------------------------------------------------------- the container
for n in $files; do
    check "$n passes credgate check-config" env ASSURED_API_KEY=x ASSURED_USER=u ASSURED_PASS=p WRIFTAI_ACCESS_TOKEN=t \
        "$BIN" check-config --config "$WORK/$n" >/dev/null
done
SANDBOX_PORT=$(free_port)
KEY="k8s-$RANDOM$RANDOM"
SANDBOX_API_KEY=$KEY SANDBOX_USER=k8s@example.com SANDBOX_PASS=k8s-pass "$BIN" sandbox --host 127.0.0.1 --port "$SANDBOX_PORT" \
    >"$WORK/sandbox.log" 2>&1 &
PIDS+=($!)
wait_up "http://127.0.0.1:$SANDBOX_PORT/sandbox/healthz" "${PIDS[0]}" 30 || { cat "$WORK/sandbox.log"; exit 1; }
mkdir -p "$WORK/secrets"
printf '%s' "$KEY" >"$WORK/secrets/api-key"
printf 'wrift-token' >"$WORK/secrets/token"
# The container's command with the image's ENV (CREDGATE_HOST=0.0.0.0 included: the command must undo it), the
# Deployment's env with the paths moved into the work directory, the base URL at the sandbox.
read -ra COMMAND <<<"$command"
[[ ${COMMAND[0]:-} == env || ${COMMAND[0]:-} == /usr/bin/env ]] && COMMAND[0]=$(command -v env)
for i in "${!COMMAND[@]}"; do [[ ${COMMAND[$i]} == /usr/local/bin/credgate ]] && COMMAND[$i]=$BIN; done
[[ ${COMMAND[0]} == serve ]] && COMMAND=("$BIN" "${COMMAND[@]}")
CONFIGS=$(sed "s|/etc/credgate/|$WORK/|g" <<<"$config_env")
env -i PATH="$PATH" HOME="$WORK" CREDGATE_HOST=0.0.0.0 CREDGATE_LOG_FORMAT=json CREDGATE_CONFIG="$CONFIGS" \
    ASSURED_BASE_URL="http://127.0.0.1:$SANDBOX_PORT" ASSURED_API_KEY_FILE="$WORK/secrets/api-key" \
    WRIFTAI_ACCESS_TOKEN_FILE="$WORK/secrets/token" TMPDIR="$WORK" \
    "${COMMAND[@]}" >"$WORK/credgate.out" 2>"$WORK/credgate.err" &
PID=$!
PIDS+=("$PID")
echo "  running: ${COMMAND[*]} with CREDGATE_HOST=0.0.0.0 (the image's ENV) and CREDGATE_CONFIG=$CONFIGS"
if ! wait_up "http://127.0.0.1:$admin_port/credgate/healthz" "$PID" 15; then
    fail "credgate starts with the example's three files"
    cat "$WORK/credgate.out" "$WORK/credgate.err"
    echo "k8s-example-check: $PASSED passed, $FAILED failed"
    exit 1
fi
# Listening sockets: local address in hex (/proc/net/tcp, state 0A).
bound() { # host-hex port
    awk -v a="$1:$(printf '%04X' "$2")" '$2 == a && $4 == "0A" { found = 1 } END { exit !found }' /proc/net/tcp
}
for n in $files; do
    port=$(awk '/^  port:/ { print $2; exit }' "$WORK/$n")
    if [[ $n == "$admin_files" ]]; then
        check "$n's listener is bound to 0.0.0.0:$port" bound 00000000 "$port"
    else
        check "$n's listener is bound to 127.0.0.1:$port, not 0.0.0.0" bound 0100007F "$port"
    fi
done
# As Prometheus reaches the pod's IP: this machine's own first non-loopback IPv4 address.
POD_IP=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+\.' | grep -v '^127\.' | head -1 || true)
POD_IP=${POD_IP:-127.0.0.1}
code=$(curl -s -o "$WORK/metrics" -w '%{http_code} %{content_type}' --max-time 5 "http://$POD_IP:$admin_port/credgate/metrics" || true)
check "GET http://$POD_IP:$admin_port/credgate/metrics (not loopback, as a scrape) answers 200 text/plain ($code)" \
    grep -q '^200 text/plain' <<<"$code"
check "  ... with credgate_ series" grep -q '^credgate_requests_total\|^# TYPE credgate_' "$WORK/metrics"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$POD_IP:$admin_port/credgate/readiness" || true)
check "  ... and the readiness probe's path answers 200 there ($code)" test "$code" = 200
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$POD_IP:$admin_port/api/v1/users/providers-list/" || true)
check "the admin listener forwards no API path (GET /api/v1/users/providers-list/ answers $code, expected 404)" test "$code" = 404
no_secret() { ! grep -qF "$KEY" "$WORK/metrics" "$WORK/credgate.out" "$WORK/credgate.err"; }
check "no secret in the metrics or the logs" no_secret
kill -TERM "$PID"
status=0
wait "$PID" || status=$?
check "SIGTERM: exit status 0 (got $status)" test "$status" = 0
echo "k8s-example-check: $PASSED passed, $FAILED failed"
((FAILED == 0))
