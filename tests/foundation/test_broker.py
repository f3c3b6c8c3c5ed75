"""The embedded broker (filesystem://) never shows a worker a message that is still being written."""

import pytest
from kombu import Connection
from kombu.transport import filesystem

from joget_cluster import broker


@pytest.fixture
def channel(tmp_path):
    folder = str(tmp_path)
    conn = Connection("filesystem://localhost/", transport_options={
        "data_folder_in": folder, "data_folder_out": folder, "store_processed": False})
    yield conn.default_channel
    conn.release()


def test_the_filesystem_url_takes_the_console_transport(channel):
    assert isinstance(channel, broker.Channel)


def test_a_message_being_written_is_not_taken_and_arrives_whole(channel, monkeypatch):
    seen_mid_write = []

    def dumps_while_a_worker_polls(payload):
        # The worker polls between the file's creation and its content (kombu's own transport loses the
        # message here: the worker reads an empty file and dies on the JSON).
        with pytest.raises(filesystem.Empty):
            channel._get("jcc")
        seen_mid_write.append(True)
        return '{"task": "x"}'

    monkeypatch.setattr(broker, "dumps", dumps_while_a_worker_polls)
    channel._put("jcc", {"task": "x"})
    assert seen_mid_write == [True]
    assert channel._get("jcc") == {"task": "x"}
