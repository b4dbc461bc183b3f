#!/usr/bin/env bash
# Container test: build the image the way this machine allows (no registry: a Debian base made
# with debootstrap and imported into podman), then run it read-only, with every capability
# dropped, as its non-root user, with NO network (`--network none`: the shipped catalogs cannot
# reach anything), until the image's own HEALTHCHECK passes and /metrics serves the contract's
# families. Also: the evidence archive lands on the state volume, basic auth works with the
# healthcheck's credentials, SIGTERM stops it cleanly.
#
# Needs root and: podman runc debootstrap (Debian packages; fuse-overlayfs uidmap slirp4netns
# help). Exit 0 pass, 1 fail, 77 skipped (prerequisite missing outside CI).
#
# Environment: MSGREACH_CI_CACHE (default /var/tmp/msgreach-ci) keeps the debootstrapped base
# between runs; MSGREACH_CI_REBUILD_BASE=1 forces a fresh one. PIP_INDEX_URL / PIP_EXTRA_INDEX_URL
# (or pip's own config) are passed to the build.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
TAG="mrf-ct-$$"
IMAGE="localhost/msgreach:ci-$$"
BASE="localhost/msgreach-ci-base:bookworm"
CACHE="${MSGREACH_CI_CACHE:-/var/tmp/msgreach-ci}"
WORK="$(mktemp -d /tmp/msgreach-container.XXXXXX)"
RUN=(podman --runtime runc run --cgroup-manager=cgroupfs --ulimit nofile=20000:20000 --ulimit nproc=32768:32768)
started=$(date +%s)

log() { printf '== [%3ss] %s\n' "$(( $(date +%s) - started ))" "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
missing() {
  if [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; then fail "missing prerequisite: $*"; fi
  echo "SKIP: missing prerequisite: $*"; exit 77
}

cleanup() {
  set +e
  for c in "$TAG" "$TAG-auth"; do podman rm -f -t 2 "$c" >/dev/null 2>&1; done
  podman volume rm -f "$TAG-state" >/dev/null 2>&1
  podman rmi -f "$IMAGE" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || missing "root"
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing "$tool"; done

# --- base image: Debian bookworm + python3 + venv, from the mirror apt uses here ----------------
mirror=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
  | grep -m1 -E 'debian/?$|debian ' | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//; s/[[:space:]].*$//' || true)
mirror=${mirror:-http://deb.debian.org/debian}
mkdir -p "$CACHE"
if [ "${MSGREACH_CI_REBUILD_BASE:-0}" = 1 ] || [ ! -s "$CACHE/base.tar" ]; then
  log "debootstrap bookworm (minbase + python3, python3-venv, ca-certificates) from $mirror"
  rm -rf "$CACHE/rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$CACHE/rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap"; }
  # Nothing the image needs: package lists and caches, documentation, translations.
  rm -rf "$CACHE"/rootfs/var/cache/apt/* "$CACHE"/rootfs/var/lib/apt/lists/* \
         "$CACHE"/rootfs/usr/share/{doc,man,info,locale}/*
  tar -C "$CACHE/rootfs" -cf "$CACHE/base.tar.tmp" . && mv "$CACHE/base.tar.tmp" "$CACHE/base.tar"
  rm -rf "$CACHE/rootfs"
fi
log "import the base as $BASE"
podman import --change 'CMD ["/usr/bin/python3"]' "$CACHE/base.tar" "$BASE" >/dev/null 2>&1

# --- build --------------------------------------------------------------------------------------
build_args=(--build-arg "BASE_IMAGE=$BASE" --build-arg "REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
            --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)")
index=${PIP_INDEX_URL:-$(pip3 config get global.index-url 2>/dev/null || true)}
extra=${PIP_EXTRA_INDEX_URL:-}
[ -n "$index" ] && build_args+=(--build-arg "PIP_INDEX_URL=$index")
case "$extra" in ""|file:*) ;; *) build_args+=(--build-arg "PIP_EXTRA_INDEX_URL=$extra") ;; esac
volumes=()
if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
  # This machine's trust store (it may include a TLS-inspecting proxy's CA) for pip in the build.
  volumes=(-v /etc/ssl/certs:/etc/ssl/certs:ro)
  build_args+=(--build-arg "PIP_CERT=/etc/ssl/certs/ca-certificates.crt")
fi
log "podman build (chroot isolation, docker format for HEALTHCHECK)"
podman build --isolation chroot --format docker --layers=false "${volumes[@]}" --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 \
  "${build_args[@]}" -t "$IMAGE" "$REPO" >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; fail "podman build"; }
size=$(podman image inspect "$IMAGE" --format '{{.Size}}')
log "built $IMAGE: $(( size / 1000000 )) MB"

# --- image metadata -----------------------------------------------------------------------------
podman image inspect "$IMAGE" >"$WORK/inspect.json"
python3 - "$WORK/inspect.json" <<'PY' || fail "image metadata"
import json, sys
image = json.load(open(sys.argv[1]))[0]
config = image["Config"]
user = config.get("User", "")
assert user and user.split(":")[0] not in ("", "0", "root"), f"runs as {user!r}"
assert config["Entrypoint"] == ["/opt/msgreach/bin/msgreach"], config["Entrypoint"]
assert "/var/lib/msgreach" in (config.get("Volumes") or {}), config.get("Volumes")
health = config.get("Healthcheck") or image.get("Healthcheck") or image.get("HealthCheck") or {}
assert health.get("Test", [None])[0] in ("CMD", "CMD-SHELL") and "/opt/msgreach/healthcheck.py" in " ".join(health["Test"]), health
labels = config.get("Labels") or {}
for key in ("title", "version", "revision", "created", "licenses", "base.name"):
    assert labels.get(f"org.opencontainers.image.{key}"), f"label {key} missing"
print(f"   user {user}, entrypoint {config['Entrypoint']}, healthcheck {health['Test']}, volumes {sorted(config['Volumes'])}")
PY

# --- run: read-only, no capabilities, non-root, no network --------------------------------------
cat >"$WORK/config.yaml" <<'YAML'
# The shipped catalogs and controls: with --network none every one of them fails at once.
vantages:
  - name: ci-container
    country: ZZ
schedule: {interval_seconds: 5, jitter_seconds: 0, retries: 0}
evidence: {path: /var/lib/msgreach/evidence.jsonl, max_bytes: 1048576, keep_files: 2}
YAML
chmod 0644 "$WORK/config.yaml"
podman volume create "$TAG-state" >/dev/null
hardening=(--network none --read-only --cap-drop=ALL --security-opt no-new-privileges)
log "run it: ${hardening[*]}"
"${RUN[@]}" -d --name "$TAG" "${hardening[@]}" \
  -v "$WORK/config.yaml:/etc/msgreach/config.yaml:ro" -v "$TAG-state:/var/lib/msgreach" "$IMAGE" >/dev/null 2>>"$WORK/podman.err"

healthy=""
for _ in $(seq 1 60); do
  [ "$(podman inspect "$TAG" --format '{{.State.Running}}')" = true ] || { podman logs "$TAG" | tail -30; fail "the container stopped"; }
  if podman healthcheck run "$TAG" >/dev/null 2>&1; then healthy=yes; break; fi
  sleep 1
done
[ -n "$healthy" ] || { podman logs "$TAG" | tail -30; fail "the image's HEALTHCHECK never passed"; }
log "HEALTHCHECK passes (/healthz from inside the container)"

fetch='import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())'
for _ in $(seq 1 30); do
  podman exec "$TAG" python -c "$fetch" http://127.0.0.1:9910/metrics >"$WORK/metrics.txt" 2>/dev/null || true
  grep -q '^msgreach_rounds_total{vantage="ci-container"}' "$WORK/metrics.txt" && break
  sleep 1
done
for family in msgreach_check_success msgreach_check_duration_seconds msgreach_check_failures_total \
              msgreach_target_verdict msgreach_service_verdict msgreach_service_reachable_ratio \
              msgreach_vantage_online msgreach_dns_lookup_duration_seconds msgreach_round_duration_seconds \
              msgreach_last_round_timestamp_seconds msgreach_rounds_total msgreach_vantage_info msgreach_build_info; do
  grep -q "^$family{" "$WORK/metrics.txt" || { head -40 "$WORK/metrics.txt"; fail "/metrics lacks $family"; }
done
grep -q '^msgreach_vantage_online{vantage="ci-container"} 0.0' "$WORK/metrics.txt" || fail "with no network the vantage must be offline"
log "/metrics serves the contract's families ($(grep -c '^msgreach_' "$WORK/metrics.txt") series)"

uid=$(podman exec "$TAG" id -u)
[ "$uid" != 0 ] || fail "runs as root"
podman exec "$TAG" sh -c 'touch /opt/msgreach/x' 2>/dev/null && fail "the root file system is writable"
# The code `dataclass` generates, kept at build time (probe.lean): the read-only image cannot write it later.
podman exec "$TAG" sh -c 'ls /opt/msgreach/lib/python3*/site-packages/probe/__pycache__/lean.*.dataclass-code' >/dev/null 2>&1 \
  || fail "the image lacks probe.lean's kept dataclass code"
caps=$(podman exec "$TAG" sh -c 'grep -E "^Cap(Eff|Prm|Bnd)" /proc/1/status' | awk '{print $2}' | sort -u)
[ "$caps" = 0000000000000000 ] || fail "capabilities left: $caps"
nnp=$(podman exec "$TAG" sh -c 'grep NoNewPrivs /proc/1/status' | awk '{print $2}')
[ "$nnp" = 1 ] || fail "no_new_privs not set"
podman exec "$TAG" sh -c 'test -s /var/lib/msgreach/evidence.jsonl && test "$(stat -c %u /var/lib/msgreach/evidence.jsonl)" = "$(id -u)"' \
  || fail "no evidence archive on the state volume"
lines=$(podman exec "$TAG" sh -c 'wc -l < /var/lib/msgreach/evidence.jsonl')
log "uid $uid, read-only root, no capabilities, no_new_privs, evidence on the volume ($lines lines)"

podman stop -t 15 "$TAG" >/dev/null 2>>"$WORK/podman.err"
code=$(podman inspect "$TAG" --format '{{.State.ExitCode}}')
[ "$code" = 0 ] || { podman logs "$TAG" | tail -20; fail "SIGTERM exit code $code"; }
podman logs "$TAG" >"$WORK/container.log" 2>&1
grep -q "round ci-container" "$WORK/container.log" || fail "no round in the logs"
log "SIGTERM: clean exit 0"

# --- basic auth: the healthcheck's credentials ---------------------------------------------------
printf 'ci-secret-%s\n' "$$" >"$WORK/password"
chmod 0644 "$WORK/password"
cat >"$WORK/config-auth.yaml" <<'YAML'
vantages: [{name: ci-auth}]
schedule: {interval_seconds: 5, jitter_seconds: 0, retries: 0}
listen: {basic_auth: {username: prometheus, password_file: /run/secrets/msgreach_password}}
YAML
chmod 0644 "$WORK/config-auth.yaml"
"${RUN[@]}" -d --name "$TAG-auth" "${hardening[@]}" \
  -e MSGREACH_HEALTH_USER=prometheus -e MSGREACH_HEALTH_PASSWORD_FILE=/run/secrets/msgreach_password \
  -v "$WORK/config-auth.yaml:/etc/msgreach/config.yaml:ro" -v "$WORK/password:/run/secrets/msgreach_password:ro" \
  --tmpfs /var/lib/msgreach:rw,size=1m,mode=1777 "$IMAGE" >/dev/null 2>>"$WORK/podman.err"
healthy=""
for _ in $(seq 1 60); do
  if podman healthcheck run "$TAG-auth" >/dev/null 2>&1; then healthy=yes; break; fi
  sleep 1
done
[ -n "$healthy" ] || { podman logs "$TAG-auth" | tail -20; fail "HEALTHCHECK with basic auth never passed"; }
status=$(podman exec "$TAG-auth" python -c 'import urllib.request, urllib.error
try: urllib.request.urlopen("http://127.0.0.1:9910/metrics", timeout=5); print(200)
except urllib.error.HTTPError as e: print(e.code)')
[ "$status" = 401 ] || fail "/metrics without credentials answered $status"
podman logs "$TAG-auth" 2>&1 | grep -q "ci-secret-" && fail "the password is in the logs"
log "basic auth: healthcheck with credentials passes, anonymous /metrics gets 401, secret not logged"

log "container test passed"
