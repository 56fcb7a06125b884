import random
import uuid

from meshproxy.sidecar.outbound import _request_id


def test_request_ids_are_distinct_version_4_uuids():
    rng = random.Random(7)
    ids = [_request_id(rng).decode() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
