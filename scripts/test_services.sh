#!/usr/bin/env bash
# `make test` set-up: Debian packages the suite needs, then PostgreSQL and Redis
# started if they are not running, and a PostgreSQL role for the tests.
set -euo pipefail

PKGS="openssh-server openssh-client tomcat10 apache2 mariadb-server mariadb-client libmariadb-java chromium
  postgresql redis-server iproute2 util-linux procps curl jq python3-venv nftables nfs-common"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "Missing Debian packages:$missing. Run as root, or: sudo apt-get install -y$missing" >&2; exit 1
  fi
  echo "Installing Debian packages:$missing" >&2
  apt-get update -qq
  # policy-rc.d keeps the packages' services from starting: the testbed starts its own.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "Starting PostgreSQL" >&2
  ver=$(ls /etc/postgresql | sort -V | tail -n1)
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "Starting Redis" >&2
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/jcc-test.log
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
# A password role works whatever pg_hba says for local TCP (trust or scram).
su postgres -c "psql -q -h /var/run/postgresql -tc \"SELECT 1 FROM pg_roles WHERE rolname='jcc_test'\"" | grep -q 1 ||
  su postgres -c "psql -q -h /var/run/postgresql -c \"CREATE ROLE jcc_test LOGIN SUPERUSER PASSWORD 'jcc_test'\""
su postgres -c "psql -q -h /var/run/postgresql -tc \"SELECT 1 FROM pg_database WHERE datname='jcc_test'\"" | grep -q 1 ||
  su postgres -c "psql -q -h /var/run/postgresql -c \"CREATE DATABASE jcc_test OWNER jcc_test\""
