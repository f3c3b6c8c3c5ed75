"""STORAGE_URL, the one setting that says where files go: uploaded artifacts and cluster backups.

- empty or `file://`: the local disk, artifacts under MEDIA_ROOT and backups under var/backups (a
  `file:///path` puts backups there instead);
- `s3://BUCKET[/PREFIX][?endpoint_url=URL&region_name=R&addressing_style=path]`: an S3-compatible
  store through django-storages, artifacts under PREFIX/media and backups under PREFIX/backups, so a
  worker on another machine reads what this one wrote. The credentials are not in the URL: boto3 reads
  them where it always does (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws, an instance role),
  which keeps them out of every place that shows settings.

Pure (no Django import): settings.py calls `storages_for()` and a unit test checks the parsing.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

S3_OPTIONS = ("endpoint_url", "region_name", "addressing_style", "signature_version")


class StorageUrlError(ValueError):
    pass


def storages_for(url: str, *, media_root: Path, backup_root: Path) -> dict[str, dict]:
    """The `default` and `backups` entries of Django's STORAGES for `url`."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if not url or parts.scheme == "file":
        root = Path(parts.path) if parts.path not in ("", "/") else backup_root
        return {
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "backups": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                        "OPTIONS": {"location": str(root), "base_url": None}},
        }
    if parts.scheme != "s3":
        raise StorageUrlError("STORAGE_URL must be empty, file:///PATH or s3://BUCKET[/PREFIX][?endpoint_url=...]")
    if not parts.hostname:
        raise StorageUrlError("STORAGE_URL s3://BUCKET...: the bucket name is missing")
    if parts.username or parts.password:
        raise StorageUrlError("STORAGE_URL holds no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = sorted(set(query) - set(S3_OPTIONS))
    if unknown:
        raise StorageUrlError(f"STORAGE_URL: unknown option(s) {', '.join(unknown)}; known: {', '.join(S3_OPTIONS)}")
    prefix = parts.path.strip("/")
    base = {"bucket_name": parts.hostname, "file_overwrite": False, "default_acl": None, "querystring_auth": True}
    for key in ("endpoint_url", "region_name", "addressing_style", "signature_version"):
        if key in query:
            base[key] = query[key]

    def at(sub: str) -> dict:
        return {"BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {**base, "location": f"{prefix}/{sub}" if prefix else sub}}

    return {"default": at("media"), "backups": at("backups")}
