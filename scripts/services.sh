#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) answer; start (or install) them if not.
set -euo pipefail
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
here="$(cd "$(dirname "$0")" && pwd)"

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  command -v pg_ctlcluster >/dev/null || "$here/setup-system.sh" postgresql
  ver=$(ls /etc/postgresql | sort -n | tail -1)
  $sudo pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 30); do pg_up && break; sleep 1; done
  pg_up || { echo "postgres did not start" >&2; exit 1; }
  # trust auth on loopback for the test role, as on the CI machine
  if ! psql -h 127.0.0.1 -U postgres -c 'select 1' >/dev/null 2>&1; then
    hba=$(ls /etc/postgresql/"$ver"/main/pg_hba.conf)
    $sudo sed -i 's/^\(host\s\+all\s\+all\s\+127.0.0.1\/32\s\+\)\S\+/\1trust/' "$hba"
    $sudo pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
  fi
fi
if ! redis_up; then
  command -v redis-server >/dev/null || "$here/setup-system.sh" redis
  mkdir -p /tmp/textbook-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir /tmp/textbook-redis \
    --logfile /tmp/textbook-redis/redis.log
  for _ in $(seq 30); do redis_up && break; sleep 0.5; done
  redis_up || { echo "redis did not start" >&2; exit 1; }
fi
echo "services: postgres and redis up"
