#!/bin/sh
# Gives a volunteer access: ./add-volunteer.sh NAME
# NAME becomes the vantage's name and its user at the gateway (letters, digits, . _ -; choose
# one that does not identify the person). Prints the path of the volunteer's .env file: send it
# over a private channel, then delete it here. The gateway reads the user list on every request:
# no restart needed. Revoke: ./add-volunteer.sh --remove NAME
set -eu
cd "$(dirname "$0")"
secrets=${SECRETS_DIR:-secrets}
out=${VOLUNTEERS_DIR:-volunteers}
[ -f .env ] && . ./.env
remove=0
if [ "${1:-}" = "--remove" ]; then remove=1; shift; fi
name=${1:-}
[ -n "$name" ] || { echo "usage: $0 [--remove] NAME" >&2; exit 2; }
case "$name" in *[!A-Za-z0-9._-]*) echo "NAME may hold letters, digits, '.', '_' and '-' only" >&2; exit 2 ;; esac
users="$secrets/volunteers.htpasswd"
[ -f "$users" ] || { echo "no $users: run ./init.sh first" >&2; exit 2; }

if [ "$remove" = 1 ]; then
  grep -v "^$name:" "$users" >"$users.new" || true
  cat "$users.new" >"$users" && rm -f "$users.new"   # same file (keeps owner and mode)
  echo "removed $name: its agent is refused from now on"
  exit 0
fi
: "${CENTRE_HOSTNAME:?set CENTRE_HOSTNAME (./init.sh writes it to .env)}"
if grep -q "^$name:" "$users"; then echo "$name exists; --remove it first to issue a new password" >&2; exit 2; fi

password=$(openssl rand -base64 32 | tr -dc 'A-Za-z0-9' | cut -c1-32)
hash=$(printf '%s' "$password" | openssl passwd -6 -stdin)
printf '%s:%s\n' "$name" "$hash" >>"$users"
umask 077
mkdir -p "$out"
cat >"$out/$name.env" <<ENV
# msgreach volunteer settings for $name: save as deploy/volunteer/.env. Keep private.
MSGREACH_VANTAGE=$name
REMOTE_WRITE_URL=https://$CENTRE_HOSTNAME/api/v1/write
REMOTE_WRITE_USERNAME=$name
REMOTE_WRITE_PASSWORD=$password
ENV
echo "$out/$name.env"
