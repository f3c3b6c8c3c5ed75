"""Size limits on uploaded files, enforced while the body streams in.

Django writes an upload to a temporary file before any view sees it; without a limit there, a
single request could fill the console's disk. `SizeLimitUploadHandler` (first in
FILE_UPLOAD_HANDLERS) drops a file as soon as it passes UPLOAD_MAX_BYTES, and `is_valid`
turns the dropped file into an error on the form's field instead of "This field is required".
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile


class SizeLimitUploadHandler(FileUploadHandler):
    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > settings.UPLOAD_MAX_BYTES:
            refused = getattr(self.request, "uploads_refused", set())
            refused.add(self.field_name)
            self.request.uploads_refused = refused
            raise SkipFile  # the parser deletes what the next handlers stored so far and skips the rest
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handler builds the file


def too_large(kind: str, limit: int, setting: str = "") -> str:
    return f"The {kind} is larger than {limit / 2**20:g} MB, the most the console accepts" + (
        f" ({setting})." if setting else ".")


def is_valid(request, form) -> bool:
    """form.is_valid(), with a file the handler dropped reported as too large."""
    valid = form.is_valid()
    for name in form.fields:
        if form.add_prefix(name) in getattr(request, "uploads_refused", ()):
            form.errors[name] = form.error_class([too_large("file", settings.UPLOAD_MAX_BYTES, "UPLOAD_MAX_MB")])
            valid = False
    return valid
