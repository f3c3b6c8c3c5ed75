"""docker-compose.yml cannot run here (no Docker engine): check its shape instead."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def load():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_healthchecks():
    services = load()["services"]
    assert set(services) == {"postgres", "redis", "web", "worker", "beat"}
    for name in ("postgres", "redis", "web", "worker"):
        assert "healthcheck" in services[name], name


def test_web_is_production_shaped():
    web = load()["services"]["web"]
    assert "gunicorn" in web["command"] and "runserver" not in web["command"]


def test_worker_can_scale():
    worker = load()["services"]["worker"]
    # A fixed name or host port would make `--scale worker=N` fail.
    assert "container_name" not in worker and "ports" not in worker
    assert "celery" in worker["command"] and "worker" in worker["command"]


def test_artifacts_and_database_on_volumes():
    doc = load()
    assert {"pgdata", "media"} <= set(doc["volumes"])
    for name in ("web", "worker"):
        svc = doc["services"][name]
        assert "media:/data/media" in svc["volumes"]
        assert svc["environment"]["MEDIA_ROOT"] == "/data/media"
        assert svc["environment"]["DATABASE_URL"].startswith("postgres://")
        assert svc["environment"]["CELERY_BROKER_URL"].startswith("redis://")


def test_env_example_documents_every_setting():
    text = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for var in ("DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "SECRETS_ENCRYPTION_KEY", "ALLOWED_HOSTS", "PORT"):
        assert f"{var}=" in text and var in readme


def test_web_publishes_plain_http_on_this_machine_only():
    # Plain HTTP to the world would carry passwords and session cookies in clear: a TLS proxy goes in front.
    ports = load()["services"]["web"]["ports"]
    assert ports == ["127.0.0.1:8000:8000"]
