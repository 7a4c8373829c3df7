"""The local broker's cluster id: the format tool takes it as an argument, so it must not look
like an option."""

import base64

from streams.dev.kafka_local import new_cluster_id


def test_cluster_ids_never_start_with_a_dash_and_decode_to_16_bytes():
    # with plain base64url, 1 id in 64 starts with "-": 5,000 draws without the guard fail
    # with probability 1 - (63/64)**5000 (certain to 34 digits)
    ids = [new_cluster_id() for _ in range(5_000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)
