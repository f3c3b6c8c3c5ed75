"""Add <distributable/> to a WAR's WEB-INF/web.xml, on the console, before the WAR is uploaded.

Tomcat replicates the sessions of a web app only when its web.xml says
<distributable/>, and Joget's jw.war does not. Patching the WAR (rather than the
unpacked copy on each node) keeps every node's file identical to one checksum and
survives Tomcat re-expanding the WAR.

The output is deterministic: the entries keep their order, names, timestamps,
permissions and compression method, so the same input gives the same bytes.
"""

from __future__ import annotations

import os
import shutil
import uuid
import zipfile
from pathlib import Path

from . import xmledit

WEB_XML = "WEB-INF/web.xml"
_ZIP64_LIMIT = (1 << 31) - 1


class WarPatchError(Exception):
    pass


def read_web_xml(path: Path) -> bytes:
    try:
        with zipfile.ZipFile(path) as war:
            return war.read(WEB_XML)
    except KeyError:
        raise WarPatchError(f"{path.name} has no {WEB_XML}: is it a web application archive?") from None
    except zipfile.BadZipFile:
        raise WarPatchError(f"{path.name} is not a ZIP (WAR) file.") from None


def needs_patch(path: Path) -> bool:
    return not xmledit.has_distributable(read_web_xml(path))


def _copy_info(item: zipfile.ZipInfo) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(item.filename, date_time=item.date_time)
    info.compress_type = item.compress_type
    info.external_attr = item.external_attr
    info.create_system = item.create_system
    info.comment = item.comment
    return info


def patch_war(src: Path, dest: Path) -> bool:
    """Write `dest`: `src` with <distributable/> in its web.xml. False (and nothing written) if it has one."""
    web_xml = read_web_xml(src)
    patched = xmledit.edit_web_xml(web_xml)
    if patched == web_xml:
        return False
    # A unique name: two worker threads may patch the same WAR at once (the results are identical).
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w") as zout:
            for item in zin.infolist():
                info = _copy_info(item)
                if item.filename == WEB_XML:
                    zout.writestr(info, patched)
                elif item.is_dir():
                    zout.writestr(info, b"")
                else:
                    # Streamed: a real jw.war runs to hundreds of MB.
                    with zin.open(item) as r, zout.open(info, "w", force_zip64=item.file_size > _ZIP64_LIMIT) as w:
                        shutil.copyfileobj(r, w, 1 << 20)
        os.replace(tmp, dest)  # atomic: a concurrent reader sees the old file or the whole new one
    finally:
        tmp.unlink(missing_ok=True)
    return True
