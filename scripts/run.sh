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
# The terminal gets warnings, errors and deployments starting and ending (logger deployments.events);
# each request and each periodic task goes to var/log/ or nowhere, not to the screen every few seconds.
mkdir -p var/log
# Threads, not prefork: deployment steps wait on SSH, so dozens run on two cores.
.venv/bin/celery -q -A joget_cluster worker -P threads -c "${WORKER_CONCURRENCY:-32}" -l warning \
  --without-gossip --without-mingle &
.venv/bin/celery -q -A joget_cluster beat -l warning -s var/celerybeat-schedule &
.venv/bin/gunicorn joget_cluster.wsgi -b "127.0.0.1:${PORT}" --threads 8 --log-level warning \
  --access-logfile var/log/access.log &
# The URL once the web server answers, not before (curl is not on every fresh machine).
$PY - "$PORT" <<'PYEOF' || true
import sys, time, urllib.request
for _ in range(150):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/login/", timeout=1)  # noqa: S310
        break
    except OSError:
        time.sleep(0.1)
PYEOF
echo
echo "  Joget cluster console: http://127.0.0.1:${PORT}/   (Ctrl-C stops web, worker and beat)"
echo "  Sign in as 'admin' with the password in var/admin-password.txt. Requests are logged in var/log/access.log."
echo
wait -n
