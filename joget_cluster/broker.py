"""The filesystem broker of `make run`, with messages that appear whole.

kombu's filesystem transport creates a message file under its final name and then writes it; a worker
polling the folder every 50 ms can take the file in between, read nothing, and die on the empty JSON
("Unrecoverable error: JSONDecodeError"), losing the message. Here a message is written under a name the
reader ignores and renamed into place, which is atomic within the folder.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"  # the reader takes only names ending in ".<queue>.msg"
        try:
            with open(partial, "wb") as fh:
                fh.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


# `filesystem://` (the documented broker URL) names this transport from here on, in every process.
TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
