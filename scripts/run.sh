#!/usr/bin/env bash
# `make run`: web + Celery worker + Celery beat on one machine; Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p var
$PY scripts/dev_env.py
set -a; [ -f .env ] && . ./.env; set +a
PORT="${PORT:-8000}"
$PY manage.py migrate --noinput -v0
$PY manage.py collectstatic --noinput -v0
$PY manage.py ensure_admin

# The process group ends together: Ctrl-C (or any one of them dying) stops the rest.
trap 'trap - EXIT INT TERM; kill 0 2>/dev/null; wait' EXIT INT TERM
# Threads, not prefork: deployment steps wait on SSH, so dozens run on two cores.
.venv/bin/celery -A joget_cluster worker -P threads -c "${WORKER_CONCURRENCY:-32}" -l info \
  --without-gossip --without-mingle &
.venv/bin/celery -A joget_cluster beat -l info -s var/celerybeat-schedule &
.venv/bin/gunicorn joget_cluster.wsgi -b "127.0.0.1:${PORT}" --threads 8 --access-logfile - &
sleep 1
echo
echo "  Joget cluster console: http://127.0.0.1:${PORT}/   (Ctrl-C stops web, worker and beat)"
echo
wait -n
