#!/bin/sh
# The volunteer's Prometheus agent: renders its config from the environment (the volunteer's .env),
# then runs Prometheus in agent mode: scrape msgreach, keep a write-ahead log, remote-write to the
# centre. Nothing is published: the agent's own web port stays on 127.0.0.1 of its container.
#
# Environment:
#   MSGREACH_VANTAGE        the vantage's name (letters, digits, . _ -): an external label
#   REMOTE_WRITE_URL        https://centre.example.org/api/v1/write
#   REMOTE_WRITE_USERNAME   this volunteer's user at the centre
#   REMOTE_WRITE_PASSWORD   its password (written to a 0600 file on tmpfs; never in the config,
#                           never logged) — or REMOTE_WRITE_PASSWORD_FILE, a file holding it
#   REMOTE_WRITE_CA_FILE    optional: CA bundle of the centre's certificate (self-signed centre)
#   MSGREACH_TARGET         where msgreach listens (default msgreach:9910)
#   SCRAPE_INTERVAL         default 15s: what the centre's rules are written for (they see a block
#                           confirmed by msgreach's confirmation round, 20 s after the first blocked
#                           round, only if the agent scrapes in between)
#   AGENT_CONFIG_DIR        where the rendered config goes (default /tmp/agent, a tmpfs)
#   AGENT_WAL               the write-ahead log directory (default /prometheus, a volume)
#   AGENT_LISTEN            the agent's own web address (default 127.0.0.1:9090; the compose file
#                           opens it to the compose network, unpublished, for msgreach's `upload`)
#   AGENT_RETENTION         samples the centre has not taken yet are kept this long (default 72h):
#                           the bound on the WAL's disk use during a long outage of the centre
#   REMOTE_WRITE_SHARDS     parallel connections to the centre (default 4, fixed: see below)
#   REMOTE_WRITE_MAX_SAMPLES_PER_SEND  samples per request (default 150: about 3 KB on the wire, 20 B a sample)
#   REMOTE_WRITE_TIMEOUT    one request's deadline (default 10s)
#   REMOTE_WRITE_MIN_BACKOFF, REMOTE_WRITE_MAX_BACKOFF  retry delays (default 1s, 30s)
#   RENDER_ONLY=1           write the config and exit (tests, promtool)
#
# The upload crosses the censor (docs/deploy.md, "The upload through a freezing line"): Russian
# DPI freezes a connection to foreign hosting after ~16 KB or ~25 packets. So every request is
# small (max_samples_per_send) and goes on a connection of its own (the centre's gateway answers
# `Connection: close`; HTTP/2 is off so that nothing multiplexes requests on one connection);
# the shards are fixed (min = max), because resharding is the one path on which Prometheus drops
# batches it is still retrying (samples_failed_total); a failed request is retried until it
# succeeds, the rest waits in the WAL (72 h). Metadata is not sent: Prometheus at the centre
# ignores it, and it would be the largest request.
# Extra arguments are passed to prometheus.
set -eu

fail() { echo "msgreach agent: $*" >&2; exit 2; }
: "${MSGREACH_VANTAGE:?set MSGREACH_VANTAGE in .env}"
: "${REMOTE_WRITE_URL:?set REMOTE_WRITE_URL in .env}"
: "${REMOTE_WRITE_USERNAME:?set REMOTE_WRITE_USERNAME in .env}"
case "$MSGREACH_VANTAGE" in *[!A-Za-z0-9._-]*) fail "MSGREACH_VANTAGE may hold letters, digits, '.', '_' and '-' only" ;; esac
case "$REMOTE_WRITE_URL" in https://*|http://127.0.0.1*|http://localhost*) ;; *) fail "REMOTE_WRITE_URL must be https:// (credentials and data cross the internet)" ;; esac
for value in "$REMOTE_WRITE_URL" "$REMOTE_WRITE_USERNAME" "${REMOTE_WRITE_CA_FILE:-}" "${MSGREACH_TARGET:-}"; do
  case "$value" in *[\"\\\ ]*) fail "a setting contains a quote, backslash or space: not allowed" ;; esac
done

shards=${REMOTE_WRITE_SHARDS:-4}
case "$shards" in ''|*[!0-9]*) fail "REMOTE_WRITE_SHARDS must be a number" ;; esac
for value in "${REMOTE_WRITE_MAX_SAMPLES_PER_SEND:-150}" "${REMOTE_WRITE_TIMEOUT:-10s}" "${REMOTE_WRITE_MIN_BACKOFF:-1s}" "${REMOTE_WRITE_MAX_BACKOFF:-30s}"; do
  case "$value" in ''|*[!0-9a-z]*) fail "a remote-write setting holds something other than digits and a unit: $value" ;; esac
done

listen=${AGENT_LISTEN:-127.0.0.1:9090}
self_target="127.0.0.1:${listen##*:}"   # the agent scrapes itself on loopback, whatever it listens on

dir=${AGENT_CONFIG_DIR:-/tmp/agent}
umask 077
mkdir -p "$dir"
if [ -n "${REMOTE_WRITE_PASSWORD_FILE:-}" ]; then
  password_file=$REMOTE_WRITE_PASSWORD_FILE
else
  : "${REMOTE_WRITE_PASSWORD:?set REMOTE_WRITE_PASSWORD in .env}"
  password_file="$dir/remote_write_password"
  printf '%s' "$REMOTE_WRITE_PASSWORD" >"$password_file"
fi
unset REMOTE_WRITE_PASSWORD

tls=""
if [ -n "${REMOTE_WRITE_CA_FILE:-}" ]; then
  tls="
    tls_config:
      ca_file: \"$REMOTE_WRITE_CA_FILE\""
fi

cat >"$dir/agent.yml" <<YAML
# Rendered by run.sh at start; edit run.sh or .env, not this file.
global:
  scrape_interval: ${SCRAPE_INTERVAL:-15s}
  scrape_timeout: ${SCRAPE_TIMEOUT:-10s}
  external_labels:
    vantage: "$MSGREACH_VANTAGE"
scrape_configs:
  - job_name: msgreach
    static_configs:
      - targets: ["${MSGREACH_TARGET:-msgreach:9910}"]
  - job_name: msgreach-agent   # the agent itself: the centre sees a growing backlog
    static_configs:
      - targets: ["$self_target"]
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: "prometheus_(remote_storage_.*|agent_.*|wal_.*|tsdb_wal_.*|build_info)"
        action: keep
remote_write:
  - url: "$REMOTE_WRITE_URL"
    remote_timeout: ${REMOTE_WRITE_TIMEOUT:-10s}
    enable_http2: false
    basic_auth:
      username: "$REMOTE_WRITE_USERNAME"
      password_file: "$password_file"$tls
    queue_config:
      min_shards: $shards
      max_shards: $shards
      max_samples_per_send: ${REMOTE_WRITE_MAX_SAMPLES_PER_SEND:-150}
      capacity: 1500
      batch_send_deadline: 5s
      min_backoff: ${REMOTE_WRITE_MIN_BACKOFF:-1s}
      max_backoff: ${REMOTE_WRITE_MAX_BACKOFF:-30s}
      retry_on_http_429: true
    metadata_config:
      send: false
YAML

[ "${RENDER_ONLY:-0}" = 1 ] && exit 0
exec prometheus --enable-feature=agent \
  --config.file="$dir/agent.yml" \
  --storage.agent.path="${AGENT_WAL:-/prometheus}" \
  --storage.agent.wal-compression \
  --storage.agent.retention.max-time="${AGENT_RETENTION:-72h}" \
  --web.listen-address="$listen" \
  "$@"
