#!/usr/bin/env python3
"""Compatibility checks with kafka-python (pure Python client, its own wire codec).

Usage:
    compat_kafka_python.py BOOTSTRAP [TOPIC_PREFIX]
    compat_kafka_python.py BOOTSTRAP --create-topic NAME PARTITIONS   (helper for kcat)

Prints one line per check, `PASS py.NAME` or `FAIL py.NAME: reason`, and exits 1 if
any failed. Checks run in order and later ones use what earlier ones produced, so the
first FAIL is the one to read.

The broker has no consumer groups and no idempotent producer yet: the consumer has
group_id=None and uses assign(); the producer keeps kafka-python's default
enable_idempotence=False.
"""

import sys
import time
import traceback

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import TopicAlreadyExistsError

PARTITIONS = 3
KEYS = 13
# gzip is built in, lz4 comes from the `lz4` package (requirements.txt).
CODECS = ["gzip", "lz4", None]
PER_CODEC = 100

TIMEOUTS = dict(request_timeout_ms=15000, api_version_auto_timeout_ms=10000)


class Suite:
    def __init__(self, bootstrap, prefix):
        self.bootstrap = bootstrap
        self.topic = prefix + "-py"
        self.topic2 = prefix + "-py-grow"
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
