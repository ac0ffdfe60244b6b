"""Which gateway replica a delivery goes to: chosen from its id alone, the same for every
notify replica and every retry, spread evenly, and moved as little as possible when a
replica is added or removed."""

from __future__ import annotations

from notify.adapters.gateways import replica_for

REPLICAS = ("gateway-log-0.gateway-log-pods:50051", "gateway-log-1.gateway-log-pods:50051",
            "gateway-log-2.gateway-log-pods:50051")
IDS = [f"delivery-{n:05d}" for n in range(6_000)]


def test_a_single_replica_takes_every_delivery():
    assert {replica_for(i, REPLICAS[:1]) for i in IDS} == {REPLICAS[0]}


def test_a_delivery_goes_to_the_same_replica_however_the_replicas_are_listed():
    listed, reversed_ = [replica_for(i, REPLICAS) for i in IDS], [replica_for(i, REPLICAS[::-1]) for i in IDS]
    assert listed == reversed_
    assert listed == [replica_for(i, list(REPLICAS)) for i in IDS]  # and asked again


def test_deliveries_spread_evenly_over_the_replicas():
    shares = {replica: 0 for replica in REPLICAS}
    for i in IDS:
        shares[replica_for(i, REPLICAS)] += 1
    assert all(1_700 < count < 2_300 for count in shares.values()), shares


def test_a_replica_added_takes_only_deliveries_for_itself_and_one_removed_gives_up_only_its_own():
    before = {i: replica_for(i, REPLICAS[:2]) for i in IDS}
    after = {i: replica_for(i, REPLICAS) for i in IDS}
    moved = {i for i in IDS if before[i] != after[i]}
    assert moved and all(after[i] == REPLICAS[2] for i in moved)
    # and removing one moves only the deliveries it had
    without_second = {i: replica_for(i, (REPLICAS[0], REPLICAS[2])) for i in IDS}
    assert all(without_second[i] == after[i] for i in IDS if after[i] != REPLICAS[1])
