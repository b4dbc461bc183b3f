#!/bin/sh
# Prepares the centre, once: ./init.sh centre.example.org
# Writes .env (the host name), and secrets/: a TLS certificate (self-signed unless you put a real
# one in secrets/tls/fullchain.pem + privkey.pem first), Grafana's admin password, an empty list
# of volunteers. Never overwrites what exists; safe to run again.
set -eu
cd "$(dirname "$0")"
host=${1:-}
if [ -z "$host" ] && [ -f .env ]; then host=$(sed -n 's/^CENTRE_HOSTNAME=//p' .env | tail -1); fi
[ -n "$host" ] || { echo "usage: $0 HOSTNAME   (the name volunteers' agents will reach, e.g. centre.example.org)" >&2; exit 2; }
case "$host" in *[!A-Za-z0-9.:-]*) echo "bad host name: $host" >&2; exit 2 ;; esac
[ -f .env ] || printf 'CENTRE_HOSTNAME=%s\n# GATEWAY_BIND=0.0.0.0\n# RETENTION=400d\n' "$host" >.env

umask 077
mkdir -p secrets/tls volunteers
if [ ! -s secrets/tls/fullchain.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
    -subj "/CN=$host" -addext "subjectAltName=DNS:$host" \
    -keyout secrets/tls/privkey.pem -out secrets/tls/fullchain.pem 2>/dev/null
  echo "A self-signed certificate for $host is in secrets/tls/. Better: replace fullchain.pem and"
  echo "privkey.pem with a real one (e.g. Let's Encrypt). Until then volunteers need fullchain.pem."
fi
if [ ! -s secrets/grafana_admin_password ]; then
  openssl rand -base64 24 | tr -d '\n' >secrets/grafana_admin_password
  echo "Grafana's admin password is in secrets/grafana_admin_password."
fi
[ -f secrets/volunteers.htpasswd ] || : >secrets/volunteers.htpasswd

# The containers run as their own users (nginx-unprivileged 101, grafana 472): they must read these.
if [ "$(id -u)" = 0 ]; then
  chown 101 secrets/tls/fullchain.pem secrets/tls/privkey.pem secrets/volunteers.htpasswd
  chown 472 secrets/grafana_admin_password
  chmod 0400 secrets/tls/privkey.pem secrets/grafana_admin_password
  chmod 0444 secrets/tls/fullchain.pem
  chmod 0400 secrets/volunteers.htpasswd
else
  chmod 0644 secrets/tls/fullchain.pem secrets/tls/privkey.pem secrets/volunteers.htpasswd secrets/grafana_admin_password
  echo "warning: not root, so secrets/ files are world-readable (0644) for the containers' users; keep secrets/ itself 0700." >&2
fi
chmod 0700 secrets
echo "Ready. Next: docker compose up -d; then ./add-volunteer.sh NAME for each volunteer."
