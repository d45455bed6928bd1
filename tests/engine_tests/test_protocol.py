"""Message round trips between parent and shards."""

from __future__ import annotations

from lepton_tune.engine import _protocol as proto


def test_round_trips():
    assert proto.unpack_slots(proto.pack_slots(proto.RUN, [0, 7, 65535])) == [0, 7, 65535]
    assert proto.unpack_done(proto.pack_done([4, 2], 12.5)) == ([4, 2], 12.5)
    assert proto.unpack_fail(proto.pack_fail([1, 3], "ValueError: é")) == ([1, 3], "ValueError: é")
    assert proto.pack_slots(proto.RUN, [1])[:1] == proto.RUN
