#!/usr/bin/env python3
"""Compatibility checks with kafka-python (pure Python client, its own wire codec).

Usage:
    compat_kafka_python.py BOOTSTRAP [TOPIC_PREFIX]
    compat_kafka_python.py BOOTSTRAP --create-topic NAME PARTITIONS   (helper for kcat)

Prints one line per check, `PASS py.NAME` or `FAIL py.NAME: reason`, and exits 1 if
any failed. Checks run in order and later ones use what earlier ones produced, so the
first FAIL is the one to read.

The first checks use assign() with group_id=None (no coordinator involved); the
group* checks then run a consumer-group round trip (FindCoordinator, Join/Sync/
Heartbeat/Leave, OffsetCommit/OffsetFetch, List/Describe/DeleteGroups) on a topic of
their own. The producer keeps kafka-python's default enable_idempotence=False.
"""

import sys
import threading
import time
import traceback

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import NonEmptyGroupError, NoError, TopicAlreadyExistsError

PARTITIONS = 3
KEYS = 13
# gzip is built in, lz4 comes from the `lz4` package (requirements.txt).
CODECS = ["gzip", "lz4", None]
PER_CODEC = 100

TIMEOUTS = dict(request_timeout_ms=15000, api_version_auto_timeout_ms=10000)

# Consumer-group round trip: N records read by two members, then M more by a third.
GROUP_N = 90
GROUP_M = 15
# A heartbeat every second, so a rebalance (the second member joining) completes in
# about a second instead of the default three.
GROUP_CONSUMER = dict(session_timeout_ms=10000, heartbeat_interval_ms=1000)


class GroupMember(threading.Thread):
    """One KafkaConsumer in a group, polled by its own thread (a consumer is not
    thread-safe, and a rebalance needs every member polling at the same time).
    Records what it got and its latest assignment. Stopping goes in lock step over all
    members (see stop_members): every member stops polling, then every member commits
    synchronously, then every member closes (LeaveGroup). Were one member to leave while
    another still polls, the survivor would rebalance and take over partitions before
    committing."""

    def __init__(self, name, make_consumer, topic):
        super().__init__(name=name, daemon=True)
        self.make_consumer = make_consumer
        self.topic = topic
        self.records = []
        self.assignment = frozenset()
        self.error = None
        self.stop = threading.Event()       # set by the suite: stop polling
        self.paused = threading.Event()     # set by us: no more polls
        self.commit_go = threading.Event()  # set by the suite: commit now
        self.committed = threading.Event()  # set by us: commit returned (or failed)
        self.close_go = threading.Event()   # set by the suite: close now
        self.lock = threading.Lock()

    def run(self):
        c = None
        try:
            c = self.make_consumer()
            c.subscribe([self.topic])
            while not self.stop.is_set():
                got = c.poll(timeout_ms=200)
                with self.lock:
                    for recs in got.values():
                        self.records.extend(recs)
                    self.assignment = frozenset(tp.partition for tp in c.assignment())
            self.paused.set()
            self.commit_go.wait(60)
            c.commit()  # synchronous: commits the position of every assigned partition
        except Exception as e:  # noqa: BLE001 - reported by the check that waits on us
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.paused.set()
            self.committed.set()
            self.close_go.wait(60)
            if c is not None:
                try:
                    c.close()  # LeaveGroup
                except Exception as e:  # noqa: BLE001
                    self.error = self.error or f"close: {type(e).__name__}: {e}"

    def snapshot(self):
        with self.lock:
            return list(self.records), self.assignment


def stop_group_members(members, timeout=30):
    """Lock-step stop (see GroupMember); raises if a member failed or hung."""
    for m in members:
        m.stop.set()
    for m in members:
        m.paused.wait(timeout)
    for m in members:
        m.commit_go.set()
    for m in members:
        m.committed.wait(timeout)
    for m in members:
        m.close_go.set()
    for m in members:
        m.join(timeout)
    for m in members:
        assert not m.is_alive(), f"{m.name} did not commit+close within {timeout}s"
        assert m.error is None, f"{m.name}: {m.error}"


class Suite:
    def __init__(self, bootstrap, prefix):
        self.bootstrap = bootstrap
        self.topic = prefix + "-py"
        self.topic2 = prefix + "-py-grow"
        self.gtopic = prefix + "-py-group"
        self.group = prefix + "-py-group"
        self.gsent = {p: 0 for p in range(PARTITIONS)}  # records produced to gtopic, by partition
        self.members = []
        self.passed = 0
        self.failed = 0
        self.sent = []  # dicts: key, value, index, ts, partition, offset
        self.admin = None

    def check(self, name, fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            self.failed += 1
            where = traceback.extract_tb(e.__traceback__)[-1]
            print(f"FAIL py.{name}: {type(e).__name__}: {e} (line {where.lineno})".replace("\n", " "), flush=True)
        else:
            self.passed += 1
            print(f"PASS py.{name}", flush=True)

    # --- helpers --------------------------------------------------------------------
    def consumer(self, **kw):
        return KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Small fetches: several Fetch round trips, batches split across responses.
            max_partition_fetch_bytes=4096,
            **TIMEOUTS,
            **kw,
        )

    def partitions(self):
        return [TopicPartition(self.topic, p) for p in range(PARTITIONS)]

    def by_partition(self):
        out = {p: [] for p in range(PARTITIONS)}
        for s in self.sent:
            out[s["partition"]].append(s)
        for lst in out.values():
            lst.sort(key=lambda s: s["offset"])
        return out

    def poll_until(self, consumer, want, timeout=30):
        got = []
        deadline = time.time() + timeout
        while len(got) < want and time.time() < deadline:
            for recs in consumer.poll(timeout_ms=500).values():
                got.extend(recs)
        return got

    def group_consumer(self, **kw):
        return KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **GROUP_CONSUMER,
            **TIMEOUTS,
            **kw,
        )

    def gproduce(self, n, tag):
        """n records to gtopic, round-robin over the partitions by explicit partition."""
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5,
                                 max_block_ms=20000, **TIMEOUTS)
        try:
            futs = [producer.send(self.gtopic, key=f"g{i}".encode(), value=f"{tag}-{i}".encode(),
                                  partition=i % PARTITIONS) for i in range(n)]
            producer.flush(timeout=30)
            for f in futs:
                md = f.get(timeout=30)
                self.gsent[md.partition] += 1
        finally:
            producer.close(timeout=10)

    def wait_for(self, what, cond, timeout=30):
        deadline = time.time() + timeout
        while not cond():
            for m in self.members:
                assert m.error is None, f"{m.name}: {m.error}"
            assert time.time() < deadline, f"timed out after {timeout}s waiting for {what}"
            time.sleep(0.1)

    def stop_members(self):
        # Always stop every member thread, even after a failed check.
        members, self.members = self.members, []
        stop_group_members(members)

    # --- checks ---------------------------------------------------------------------
    def connect(self):
        self.admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, **TIMEOUTS)

    def describe_cluster(self):
        c = self.admin.describe_cluster()
        assert c["brokers"], f"no brokers: {c}"
        assert c.get("controller_id", -1) >= 0, f"no controller: {c}"
        print(f"  brokers {c['brokers']} controller {c['controller_id']} cluster {c.get('cluster_id')}")

    def create_topic(self):
        self.admin.create_topics([NewTopic(self.topic, PARTITIONS, 1)])

    def create_topic_again_fails(self):
        try:
            self.admin.create_topics([NewTopic(self.topic, PARTITIONS, 1)])
        except TopicAlreadyExistsError:
            return
        raise AssertionError("second create_topics did not raise TopicAlreadyExistsError")

    def list_and_describe_topics(self):
        assert self.topic in self.admin.list_topics()
        (t,) = self.admin.describe_topics([self.topic])
        assert t["error_code"] == 0, t
        assert len(t["partitions"]) == PARTITIONS, t
        for p in t["partitions"]:
            assert p["error_code"] == 0 and p["leader"] >= 0, p

    def describe_configs(self):
        res = self.admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, self.topic)])
        resp = res[0]
        # v0-v2 response: resources = [(error_code, error_message, type, name, config_entries)]
        (err, msg, _typ, name, entries) = resp.resources[0][:5]
        assert err == 0, f"error {err} {msg}"
        assert name == self.topic, name
        configs = {e[0]: e[1] for e in entries}
        assert "retention.ms" in configs, sorted(configs)
        assert configs.get("cleanup.policy") == "delete", configs.get("cleanup.policy")

    def produce(self):
        base = int(time.time() * 1000) - 60000
        i = 0
        for codec in CODECS:
            producer = KafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks="all",
                compression_type=codec,
                linger_ms=20,
                max_block_ms=20000,
                **TIMEOUTS,
            )
            futures = []
            for _ in range(PER_CODEC):
                key = f"key-{i % KEYS}"
                value = f"value-{i}-{codec}-" + "y" * (i % 40)
                if i == 5:
                    value = None  # tombstone
                rec = dict(key=key, value=value, index=i, ts=base + i)
                fut = producer.send(
                    self.topic,
                    key=key.encode(),
                    value=None if value is None else value.encode(),
                    timestamp_ms=base + i,
                    headers=[("i", str(i).encode())],
                )
                futures.append((rec, fut))
                i += 1
            producer.flush(timeout=30)
            for rec, fut in futures:
                md = fut.get(timeout=30)
                assert md.offset >= 0, md
                rec.update(partition=md.partition, offset=md.offset)
                self.sent.append(rec)
            producer.close(timeout=10)

        parts_of = {}
        for s in self.sent:
            parts_of.setdefault(s["key"], set()).add(s["partition"])
        bad = {k: v for k, v in parts_of.items() if len(v) != 1}
        assert not bad, f"keys spread over partitions: {bad}"
        for p, lst in self.by_partition().items():
            offs = [s["offset"] for s in lst]
            assert offs == list(range(len(lst))), f"p{p} offsets not dense: {offs[:10]}..."
            idx = [s["index"] for s in lst]
            assert idx == sorted(idx), f"p{p} order broken"
        used = sum(1 for lst in self.by_partition().values() if lst)
        assert used >= 2, f"all keys went to {used} partition(s)"

    def consume_all(self):
        assert self.sent, "nothing produced"
        expected = self.by_partition()
        c = self.consumer()
        try:
            c.assign(self.partitions())
            c.seek_to_beginning()
            got = self.poll_until(c, len(self.sent))
        finally:
            c.close()
        assert len(got) == len(self.sent), f"consumed {len(got)} of {len(self.sent)}"
        pos = {}
        for r in got:
            j = pos.get(r.partition, 0)
            pos[r.partition] = j + 1
            s = expected[r.partition][j]
            where = f"p{r.partition}@{r.offset}"
            assert r.offset == s["offset"], f"{where}: expected offset {s['offset']}"
            assert r.key.decode() == s["key"], f"{where}: key {r.key!r} != {s['key']}"
            value = None if r.value is None else r.value.decode()
            assert value == s["value"], f"{where}: value {value!r} != {s['value']!r}"
            assert r.timestamp == s["ts"], f"{where}: timestamp {r.timestamp} != {s['ts']}"
            assert list(r.headers) == [("i", str(s["index"]).encode())], f"{where}: headers {r.headers}"

    def offsets(self):
        expected = self.by_partition()
        c = self.consumer()
        try:
            begin = c.beginning_offsets(self.partitions())
            end = c.end_offsets(self.partitions())
            for tp in self.partitions():
                assert begin[tp] == 0, f"{tp} beginning {begin[tp]}"
                assert end[tp] == len(expected[tp.partition]), f"{tp} end {end[tp]} != {len(expected[tp.partition])}"
        finally:
            c.close()

    def offsets_for_times(self):
        expected = self.by_partition()
        query, want = {}, {}
        for tp in self.partitions():
            lst = expected[tp.partition]
            if len(lst) >= 2:
                mid = lst[len(lst) // 2]
                # Timestamps strictly increase along a partition, so the first record
                # with timestamp >= mid's is mid itself.
                query[tp] = mid["ts"]
                want[tp] = mid
        c = self.consumer()
        try:
            got = c.offsets_for_times(query)
        finally:
            c.close()
        for tp, mid in want.items():
            ot = got.get(tp)
            assert ot is not None and ot.offset == mid["offset"] and ot.timestamp == mid["ts"], (
                f"{tp}: {ot}, expected offset {mid['offset']} ts {mid['ts']}")

    def create_partitions_and_delete(self):
        self.admin.create_topics([NewTopic(self.topic2, 1, 1)])
        self.admin.create_partitions({self.topic2: NewPartitions(total_count=3)})
        deadline = time.time() + 10
        while True:
            (t,) = self.admin.describe_topics([self.topic2])
            if len(t["partitions"]) == 3:
                break
            assert time.time() < deadline, f"{self.topic2} has {len(t['partitions'])} partitions"
            time.sleep(0.2)
        self.admin.delete_topics([self.topic2])
        deadline = time.time() + 10
        while self.topic2 in self.admin.list_topics():
            assert time.time() < deadline, f"{self.topic2} still listed after delete"
            time.sleep(0.2)

    # --- consumer group round trip -----------------------------------------------------
    def group_join(self):
        self.admin.create_topics([NewTopic(self.gtopic, PARTITIONS, 1)])
        self.members = [GroupMember(f"member{i}", self.group_consumer, self.gtopic) for i in (1, 2)]
        self.members[0].start()
        # The first member alone owns all partitions; the second one joining forces a
        # rebalance that must split them.
        self.wait_for("member1 to own all partitions",
                      lambda: len(self.members[0].snapshot()[1]) == PARTITIONS)
        self.members[1].start()

        def split():
            a1, a2 = (m.snapshot()[1] for m in self.members)
            return a1 and a2 and not (a1 & a2) and (a1 | a2) == set(range(PARTITIONS))
        self.wait_for("the two members to split the partitions", split)
        a1, a2 = (m.snapshot()[1] for m in self.members)
        print(f"  member1 owns {sorted(a1)}, member2 owns {sorted(a2)}")

    def group_describe_stable(self):
        (g,) = self.admin.describe_consumer_groups([self.group])
        assert g.group == self.group, g
        assert g.state == "Stable", f"state {g.state!r}"
        assert g.protocol_type == "consumer", f"protocol_type {g.protocol_type!r}"
        assert g.protocol in ("range", "roundrobin", "sticky"), f"protocol {g.protocol!r}"
        assert len(g.members) == 2, f"{len(g.members)} members: {g.members}"
        owned = []
        for m in g.members:
            assert m.member_id and m.client_id, m
            assert not isinstance(m.member_assignment, bytes), f"assignment not decoded: {m}"
            parts = [tp.partition for tp in m.member_assignment.partitions() if tp.topic == self.gtopic]
            assert parts, f"member {m.member_id} has no partition of {self.gtopic}: {m.member_assignment}"
            owned.extend(parts)
            assert self.gtopic in m.member_metadata.topics, m.member_metadata
        assert sorted(owned) == list(range(PARTITIONS)), f"assignments {owned}"
        assert self.group in [grp for grp, _ in self.admin.list_consumer_groups()], "group not listed"

    def group_consume(self):
        assert len(self.members) == 2, "members did not join"
        self.gproduce(GROUP_N, "a")

        def total():
            return sum(len(m.snapshot()[0]) for m in self.members)
        self.wait_for(f"{GROUP_N} records", lambda: total() >= GROUP_N)
        time.sleep(0.5)  # room for duplicates to show up
        seen = {}
        for m in self.members:
            recs, owned = m.snapshot()
            for r in recs:
                assert r.topic == self.gtopic, r
                where = f"p{r.partition}@{r.offset}"
                assert where not in seen, f"{where} consumed twice ({seen[where]} and {m.name})"
                seen[where] = m.name
                assert r.partition in owned, f"{m.name} got {where} but owns {sorted(owned)}"
        assert len(seen) == GROUP_N, f"consumed {len(seen)} of {GROUP_N}"
        for p in range(PARTITIONS):
            owners = {name for where, name in seen.items() if where.startswith(f"p{p}@")}
            assert len(owners) == 1, f"partition {p} read by {owners}"

    def group_commit_close(self):
        self.stop_members()

    def group_offsets_committed(self):
        offs = self.admin.list_consumer_group_offsets(self.group)
        got = {tp.partition: om.offset for tp, om in offs.items() if tp.topic == self.gtopic}
        assert got == self.gsent, f"committed {got}, expected {self.gsent}"
        (g,) = self.admin.describe_consumer_groups([self.group])
        assert g.state == "Empty" and not g.members, f"after close: state {g.state!r}, {len(g.members)} members"

    def group_resume(self):
        before = dict(self.gsent)
        self.gproduce(GROUP_M, "b")
        m = GroupMember("member3", self.group_consumer, self.gtopic)
        self.members = [m]
        m.start()
        self.wait_for(f"{GROUP_M} new records", lambda: len(m.snapshot()[0]) >= GROUP_M)
        time.sleep(1.0)  # anything before the committed offsets would arrive with them
        recs, owned = m.snapshot()
        assert owned == set(range(PARTITIONS)), f"member3 owns {sorted(owned)}"
        bad = [f"p{r.partition}@{r.offset}" for r in recs if r.offset < before[r.partition]]
        assert not bad, f"re-read records before the committed offsets: {bad[:10]}"
        assert len(recs) == GROUP_M, f"got {len(recs)} records, expected {GROUP_M}"
        assert all(r.value.startswith(b"b-") for r in recs), "old records re-read"

    def group_delete_nonempty_fails(self):
        assert self.members, "member3 not running"
        ((gid, err),) = self.admin.delete_consumer_groups([self.group])
        assert gid == self.group and err is NonEmptyGroupError, f"delete of a live group: {gid} {err}"

    def group_delete(self):
        self.stop_members()
        offs = self.admin.list_consumer_group_offsets(self.group)
        got = {tp.partition: om.offset for tp, om in offs.items() if tp.topic == self.gtopic}
        assert got == self.gsent, f"committed {got}, expected {self.gsent}"
        ((gid, err),) = self.admin.delete_consumer_groups([self.group])
        assert gid == self.group and err is NoError, f"delete: {gid} {err}"
        assert self.group not in [grp for grp, _ in self.admin.list_consumer_groups()], "still listed"
        offs = self.admin.list_consumer_group_offsets(self.group)
        assert not any(om.offset >= 0 for om in offs.values()), f"offsets survive delete: {offs}"

    def run(self):
        self.check("connectAdmin", self.connect)
        if self.admin is None:
            return
        self.check("describeCluster", self.describe_cluster)
        self.check("createTopic", self.create_topic)
        self.check("createTopicAgainFails", self.create_topic_again_fails)
        self.check("listDescribeTopics", self.list_and_describe_topics)
        self.check("describeConfigs", self.describe_configs)
        self.check("produce", self.produce)
        self.check("consumeAll", self.consume_all)
        self.check("beginningEndOffsets", self.offsets)
        self.check("offsetsForTimes", self.offsets_for_times)
        self.check("createPartitionsDeleteTopic", self.create_partitions_and_delete)
        try:
            self.check("groupJoinSplitsPartitions", self.group_join)
            self.check("groupDescribeStable", self.group_describe_stable)
            self.check("groupConsume", self.group_consume)
            self.check("groupCommitClose", self.group_commit_close)
            self.check("groupOffsetsCommitted", self.group_offsets_committed)
            self.check("groupResumeFromCommitted", self.group_resume)
            self.check("groupDeleteNonEmptyFails", self.group_delete_nonempty_fails)
            self.check("groupDelete", self.group_delete)
        finally:
            try:
                self.stop_members()
            except AssertionError:
                pass
        self.admin.close()


def main(argv):
    if len(argv) >= 5 and argv[2] == "--create-topic":
        admin = KafkaAdminClient(bootstrap_servers=argv[1], **TIMEOUTS)
        admin.create_topics([NewTopic(argv[3], int(argv[4]), 1)])
        admin.close()
        return 0
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    prefix = argv[2] if len(argv) > 2 else f"compat-{int(time.time())}"
    s = Suite(argv[1], prefix)
    s.run()
    return 0 if s.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
