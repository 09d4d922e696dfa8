"""Configuration mistakes name the file, the line and the key; good files give the expected targets."""

import pytest

from impl.server.config import ConfigError, load

GOOD = """\
[server]
images = "images"
state = "state"
transport = "udp"
listen = "127.0.0.1:6000"
buffer_count = 32

[[target]]
shelf = 1
slot = 2
image = "base"
clients = ["52:54:00:00:00:01", "52-54-00-00-00-02"]

[[target]]
image = "other"
clients = ["*"]
read_only = true
"""


def write(tmp_path, text):
    path = tmp_path / "storvisor.toml"
    path.write_text(text)
    return str(path)


def test_good_file(tmp_path):
    config = load(write(tmp_path, GOOD))
    assert config.listen == ("127.0.0.1", 6000) and config.buffer_count == 32
    assert config.images == str(tmp_path / "images") and config.state == str(tmp_path / "state")
    first, second = config.targets
    assert (first.shelf, first.slot, first.image, len(first.clients)) == (1, 2, "base", 2)
    assert (second.shelf, second.slot, second.clients, second.read_only) == (0, 0, None, True)


def test_an_ipv6_listening_address_goes_in_brackets(tmp_path):
    assert load(write(tmp_path, GOOD.replace('listen = "127.0.0.1:6000"', 'listen = "[::1]:6000"'))).listen == ("::1", 6000)


@pytest.mark.parametrize(
    "change,message",
    [
        (("slot = 2", 'slot = "two"'), r"storvisor.toml:10: target\[0\].slot: must be int"),
        (("slot = 2", "slot = 255"), r":10: target\[0\].slot: must be between 0 and 254"),
        (("shelf = 1", "shelf = 65535"), r":9: target\[0\].shelf: must be between 0 and 65534"),
        (('"52-54-00-00-00-02"', '"52:54:00:00:00"'), r":12: target\[0\].clients: not a MAC address"),
        (('transport = "udp"', 'transport = "tcp"'), r":4: server.transport: must be one of udp, raw"),
        (('listen = "127.0.0.1:6000"', 'listen = "6000"'), r":5: server.listen: must be HOST:PORT"),
        (('listen = "127.0.0.1:6000"', 'listen = "::1:6000"'), r":5: server.listen: an IPv6 address goes in brackets"),
        (("buffer_count = 32", "buffer_cont = 32"), r":6: server.buffer_cont: unknown key"),
        (("read_only = true", "read_only = 1"), r":17: target\[1\].read_only: must be bool"),
        (('image = "other"\n', ""), r"target\[1\].image: every target names an image"),
        (('clients = ["*"]', ""), r"target\[1\].clients: list the client MAC addresses"),
        (("slot = 2", "slot = 2\nslot = 3"), r"storvisor.toml: not valid TOML: .*line 11"),
        (('transport = "udp"', 'transport = "raw"'), r"server.interface: the raw transport needs"),
        (("buffer_count = 32", "buffer_count = 32\nworkers = 65"), r":7: server.workers: must be between 0 and 64"),
    ],
)
def test_mistakes_say_where(tmp_path, change, message):
    old, new = change
    assert old in GOOD
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, GOOD.replace(old, new, 1)))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load(str(tmp_path / "nope.toml"))


def test_no_targets(tmp_path):
    with pytest.raises(ConfigError, match="at least one"):
        load(write(tmp_path, '[server]\nimages = "x"\n'))


def test_two_catch_all_targets_at_one_address(tmp_path):
    text = GOOD.replace("shelf = 1\nslot = 2\n", "").replace('clients = ["52:54:00:00:00:01", "52-54-00-00-00-02"]', 'clients = ["*"]')
    with pytest.raises(ConfigError, match=r"target\[1\]: every client already has shelf 0 slot 0 in target\[0\]"):
        load(write(tmp_path, text))
