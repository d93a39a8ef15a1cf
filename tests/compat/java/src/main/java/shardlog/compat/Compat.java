package shardlog.compat;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.QuorumInfo;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Compatibility checks with the official Java client (kafka-clients 4.x).
 *
 * <p>Usage: {@code Compat BOOTSTRAP [TOPIC_PREFIX]}. Prints one line per check,
 * {@code PASS java.NAME} or {@code FAIL java.NAME: reason}; exits 1 if any failed.
 * Checks run in order and later ones use the records earlier ones produced; a
 * failure in an early check usually fails the later ones too (the first FAIL is the
 * one to read).
 *
 * <p>The first checks use a producer with enable.idempotence=false and consumers with
 * assign() and no group.id. Then: a producer with the default configuration
 * (idempotent, acks=all: InitProducerId, sequence numbers) and a consumer-group round
 * trip (subscribe, commitSync, resume from the committed offsets, and the Admin group
 * API) on topics of their own.
 */
public final class Compat extends Checks {
    static final int PARTITIONS = 3;
    static final String[] CODECS = {"lz4", "zstd", "gzip", "snappy", "none"};
    static final int PER_CODEC = 100;
    static final int KEYS = 17;

    final String bootstrap;
    final String topic;
    final String topic2;
    final String idemTopic;
    final String groupTopic;
    final String group;
    /** Records produced to groupTopic, by partition. */
    final Map<Integer, Integer> groupSent = new TreeMap<>();
    List<GroupMember> members = new ArrayList<>();
    static final int GROUP_N = 90;
    static final int GROUP_M = 15;
    /** What the producer was told, by partition then offset, to compare with what we fetch. */
    record Sent(String key, String value, int index, long timestamp, int partition, long offset) {}

    final List<Sent> sent = new ArrayList<>();

    Compat(String bootstrap, String prefix) {
        super("java");
        this.bootstrap = bootstrap;
        this.topic = prefix + "-java";
        this.topic2 = prefix + "-java-grow";
        this.idemTopic = prefix + "-java-idem";
        this.groupTopic = prefix + "-java-group";
        this.group = prefix + "-java-group";
        for (int p = 0; p < PARTITIONS; p++) {
            groupSent.put(p, 0);
        }
    }


    Properties common() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        return p;
    }

    KafkaProducer<byte[], byte[]> producer(String codec) {
        Properties p = common();
        p.remove(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false");
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        // Batch a little so compressed batches hold many records.
        p.put(ProducerConfig.LINGER_MS_CONFIG, "20");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        return new KafkaProducer<>(p);
    }

    KafkaConsumer<byte[], byte[]> consumer() {
        Properties p = common();
        // No group.id: manual assignment, no commits, no coordinator.
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        // Small fetches so consuming takes several Fetch round trips and crosses batches.
        p.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, "4096");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        return new KafkaConsumer<>(p);
    }

    static String str(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    static byte[] bytes(String s) {
        return s == null ? null : s.getBytes(StandardCharsets.UTF_8);
    }

    List<TopicPartition> partitions() {
        List<TopicPartition> tps = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            tps.add(new TopicPartition(topic, p));
        }
        return tps;
    }

    Map<Integer, List<Sent>> byPartition() {
        Map<Integer, List<Sent>> m = new HashMap<>();
        for (int p = 0; p < PARTITIONS; p++) {
            m.put(p, new ArrayList<>());
        }
        for (Sent s : sent) {
            m.get(s.partition()).add(s);
        }
        for (List<Sent> l : m.values()) {
            l.sort((a, b) -> Long.compare(a.offset(), b.offset()));
        }
        return m;
    }

    void run() {
        try (Admin admin = Admin.create(common())) {
            check("describeCluster", () -> {
                DescribeClusterResult r = admin.describeCluster();
                Collection<Node> nodes = r.nodes().get();
                String id = r.clusterId().get();
                Node controller = r.controller().get();
                require(!nodes.isEmpty(), "no nodes");
                require(id != null && !id.isEmpty(), "no cluster id");
                for (Node n : nodes) {
                    require(n.id() >= 0 && n.port() > 0, "bad node %s", n);
                }
                System.out.println("  cluster " + id + " nodes " + nodes + " controller " + controller);
            });

            check("describeMetadataQuorum", () -> {
                // What kafka-metadata-quorum describe --status prints.
                QuorumInfo q = admin.describeMetadataQuorum().quorumInfo().get();
                require(q.leaderId() >= 0, "no leader: %s", q);
                require(q.leaderEpoch() >= 1 && q.highWatermark() >= 1, "epoch/high watermark: %s", q);
                require(q.voters().stream().anyMatch(v -> v.replicaId() == q.leaderId()),
                    "the leader is not a voter: %s", q);
                System.out.println("  quorum leader " + q.leaderId() + " epoch " + q.leaderEpoch()
                    + " high watermark " + q.highWatermark());
            });

            check("createTopic", () -> {
                admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get();
            });

            if (failed == 2) {
                // Neither metadata nor topic creation works: every later check would only
                // wait out its timeouts. The two failures above say enough.
                System.out.println("  skipping the remaining java checks");
                return;
            }

            check("createTopicAgainFails", () -> {
                try {
                    admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get();
                    throw new AssertionError("second create of " + topic + " succeeded");
                } catch (ExecutionException e) {
                    require(e.getCause() instanceof TopicExistsException,
                            "expected TopicExistsException, got %s", e.getCause());
                }
            });

            check("listTopics", () -> {
                Set<String> names = admin.listTopics().names().get();
                require(names.contains(topic), "%s not in %s", topic, names);
            });

            check("describeTopics", () -> {
                TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
                require(d.partitions().size() == PARTITIONS, "partitions %d", d.partitions().size());
                require(d.topicId() != null, "no topic id");
                d.partitions().forEach(p -> {
                    require(p.leader() != null && !p.leader().isEmpty(), "partition %d has no leader", p.partition());
                    require(p.replicas().size() == 1 && p.isr().size() == 1, "replicas/isr %s", p);
                });
            });

            check("describeTopicConfigs", () -> {
                ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
                Config c = admin.describeConfigs(List.of(res)).all().get().get(res);
                ConfigEntry retention = c.get("retention.ms");
                ConfigEntry cleanup = c.get("cleanup.policy");
                require(retention != null, "no retention.ms in %s", c.entries().stream().map(ConfigEntry::name).toList());
                require(cleanup != null && cleanup.value().equals("delete"), "cleanup.policy %s", cleanup);
            });

            check("produce", this::produce);
            check("consumeAll", this::consumeAll);
            check("consumeFromMiddle", this::consumeFromMiddle);
            check("beginningEndOffsets", this::beginningEndOffsets);
            check("adminListOffsets", () -> adminListOffsets(admin));
            check("adminListOffsetsMaxTimestamp", () -> adminListOffsetsMaxTimestamp(admin));
            check("offsetsForTimes", this::offsetsForTimes);

            check("createPartitions", () -> {
                admin.createTopics(List.of(new NewTopic(topic2, 1, (short) 1))).all().get();
                admin.createPartitions(Map.of(topic2, NewPartitions.increaseTo(3))).all().get();
                long deadline = System.currentTimeMillis() + 10_000;
                int n;
                do {
                    n = admin.describeTopics(List.of(topic2)).allTopicNames().get().get(topic2).partitions().size();
                    if (n == 3) {
                        break;
                    }
                    Thread.sleep(200);
                } while (System.currentTimeMillis() < deadline);
                require(n == 3, "%s has %d partitions after increaseTo(3)", topic2, n);
            });

            check("deleteRecords", () -> {
                // kafka-delete-records' call: records below offset 3 of a partition go.
                try (KafkaProducer<byte[], byte[]> producer = producer("none")) {
                    for (int i = 0; i < 5; i++) {
                        producer.send(new ProducerRecord<>(topic2, 0, null, ("r" + i).getBytes(StandardCharsets.UTF_8))).get();
                    }
                }
                TopicPartition tp = new TopicPartition(topic2, 0);
                long low = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(3)))
                    .lowWatermarks().get(tp).get().lowWatermark();
                require(low == 3, "low watermark %d after deleting before 3", low);
                long earliest = admin.listOffsets(Map.of(tp, OffsetSpec.earliest()))
                    .partitionResult(tp).get().offset();
                require(earliest == 3, "earliest offset %d after deleting before 3", earliest);
            });

            check("deleteTopics", () -> {
                admin.deleteTopics(List.of(topic2)).all().get();
                long deadline = System.currentTimeMillis() + 10_000;
                while (admin.listTopics().names().get().contains(topic2)) {
                    require(System.currentTimeMillis() < deadline, "%s still listed after delete", topic2);
                    Thread.sleep(200);
                }
                try {
                    admin.describeTopics(List.of(topic2)).allTopicNames().get();
                    throw new AssertionError("describe of deleted topic succeeded");
                } catch (ExecutionException e) {
                    require(e.getCause() instanceof UnknownTopicOrPartitionException,
                            "expected UnknownTopicOrPartitionException, got %s", e.getCause());
                }
            });

            check("defaultProducerIdempotent", () -> defaultProducer(admin));

            try {
                check("groupJoinSplitsPartitions", () -> groupJoin(admin));
                check("groupListDescribeStable", () -> groupDescribeStable(admin));
                check("groupConsume", this::groupConsume);
                check("groupCommitSyncClose", this::stopMembers);
                check("groupOffsetsCommitted", () -> groupOffsetsCommitted(admin));
                check("groupResumeFromCommitted", this::groupResume);
                check("groupDeleteNonEmptyFails", () -> groupDeleteNonEmpty(admin));
                check("groupDelete", () -> groupDelete(admin));
            } finally {
                try {
                    stopMembers();
                } catch (Throwable t) {
                    // already reported by a check
                }
            }
        }
    }

    void produce() throws Exception {
        long base = System.currentTimeMillis() - 60_000;
        int i = 0;
        for (String codec : CODECS) {
            List<Future<RecordMetadata>> futures = new ArrayList<>();
            List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
            try (KafkaProducer<byte[], byte[]> producer = producer(codec)) {
                for (int j = 0; j < PER_CODEC; j++, i++) {
                    String key = "key-" + (i % KEYS);
                    String value = "value-" + i + "-" + codec + "-" + "x".repeat(i % 50);
                    if (i == 7) {
                        value = "";      // empty value
                    }
                    if (i == 11) {
                        value = null;    // tombstone
                    }
                    // Explicit, strictly increasing timestamps: offsetsForTimes below
                    // can then predict exactly which offset the broker must answer.
                    ProducerRecord<byte[], byte[]> rec = new ProducerRecord<>(
                            topic, null, base + i, bytes(key), bytes(value));
                    rec.headers().add("i", bytes(Integer.toString(i)));
                    records.add(rec);
                    futures.add(producer.send(rec));
                }
                producer.flush();
                for (int j = 0; j < futures.size(); j++) {
                    RecordMetadata md = futures.get(j).get();
                    ProducerRecord<byte[], byte[]> rec = records.get(j);
                    int idx = Integer.parseInt(str(rec.headers().lastHeader("i").value()));
                    require(md.offset() >= 0, "no offset for record %d", idx);
                    require(md.timestamp() == rec.timestamp(), "record %d: timestamp %d, sent %d",
                            idx, md.timestamp(), rec.timestamp());
                    sent.add(new Sent(str(rec.key()), str(rec.value()), idx, rec.timestamp(), md.partition(), md.offset()));
                }
            }
        }
        // Same key -> same partition; offsets dense 0..n-1 per partition in send order.
        Map<String, Set<Integer>> keyParts = sent.stream().collect(
                Collectors.groupingBy(Sent::key, Collectors.mapping(Sent::partition, Collectors.toSet())));
        keyParts.forEach((k, ps) -> require(ps.size() == 1, "key %s went to partitions %s", k, ps));
        for (List<Sent> l : byPartition().values()) {
            for (int j = 0; j < l.size(); j++) {
                require(l.get(j).offset() == j, "partition %d: offset %d at position %d",
                        l.get(j).partition(), l.get(j).offset(), j);
                require(j == 0 || l.get(j).index() > l.get(j - 1).index(), "partition order broken");
            }
        }
        long used = byPartition().values().stream().filter(l -> !l.isEmpty()).count();
        require(used >= 2, "all keys landed in %d partition(s)", used);
    }

    List<ConsumerRecord<byte[], byte[]>> pollUntil(KafkaConsumer<byte[], byte[]> c, int want) {
        List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
        long deadline = System.currentTimeMillis() + 30_000;
        while (got.size() < want && System.currentTimeMillis() < deadline) {
            c.poll(Duration.ofMillis(500)).forEach(got::add);
        }
        return got;
    }

    void consumeAll() {
        require(!sent.isEmpty(), "nothing was produced");
        Map<Integer, List<Sent>> expected = byPartition();
        try (KafkaConsumer<byte[], byte[]> c = consumer()) {
            c.assign(partitions());
            c.seekToBeginning(partitions());
            List<ConsumerRecord<byte[], byte[]>> got = pollUntil(c, sent.size());
            require(got.size() == sent.size(), "consumed %d of %d records", got.size(), sent.size());
            Map<Integer, Integer> pos = new HashMap<>();
            for (ConsumerRecord<byte[], byte[]> r : got) {
                int j = pos.merge(r.partition(), 1, Integer::sum) - 1;
                Sent s = expected.get(r.partition()).get(j);
                require(r.offset() == s.offset(), "p%d: offset %d, expected %d", r.partition(), r.offset(), s.offset());
                require(Objects.equals(str(r.key()), s.key()), "p%d@%d: key %s, expected %s",
                        r.partition(), r.offset(), str(r.key()), s.key());
                require(Objects.equals(str(r.value()), s.value()), "p%d@%d: value %s, expected %s",
                        r.partition(), r.offset(), str(r.value()), s.value());
                require(r.timestamp() == s.timestamp(), "p%d@%d: timestamp %d, expected %d",
                        r.partition(), r.offset(), r.timestamp(), s.timestamp());
                Header h = r.headers().lastHeader("i");
                require(h != null && str(h.value()).equals(Integer.toString(s.index())),
                        "p%d@%d: header i=%s, expected %d", r.partition(), r.offset(), h == null ? null : str(h.value()), s.index());
            }
        }
    }

    void consumeFromMiddle() {
        // Fetching from an offset inside a compressed batch: the broker returns the whole
        // batch and the client must skip the records before the requested offset.
        require(!sent.isEmpty(), "nothing was produced");
        Map<Integer, List<Sent>> expected = byPartition();
        int p = expected.entrySet().stream().max((a, b) -> a.getValue().size() - b.getValue().size()).get().getKey();
        List<Sent> l = expected.get(p);
        long start = l.size() / 2 + 1;
        TopicPartition tp = new TopicPartition(topic, p);
        try (KafkaConsumer<byte[], byte[]> c = consumer()) {
            c.assign(List.of(tp));
            c.seek(tp, start);
            int want = (int) (l.size() - start);
            List<ConsumerRecord<byte[], byte[]>> got = pollUntil(c, want);
            require(got.size() == want, "got %d of %d records from offset %d", got.size(), want, start);
            require(got.get(0).offset() == start, "first offset %d, expected %d", got.get(0).offset(), start);
            require(Objects.equals(str(got.get(0).value()), l.get((int) start).value()), "value mismatch");
        }
    }

    void beginningEndOffsets() {
        Map<Integer, List<Sent>> expected = byPartition();
        try (KafkaConsumer<byte[], byte[]> c = consumer()) {
            Map<TopicPartition, Long> begin = c.beginningOffsets(partitions());
            Map<TopicPartition, Long> end = c.endOffsets(partitions());
            for (TopicPartition tp : partitions()) {
                require(begin.get(tp) == 0L, "%s beginning %d", tp, begin.get(tp));
                require(end.get(tp) == expected.get(tp.partition()).size(), "%s end %d, expected %d",
                        tp, end.get(tp), expected.get(tp.partition()).size());
            }
        }
    }

    void adminListOffsets(Admin admin) throws Exception {
        Map<Integer, List<Sent>> expected = byPartition();
        Map<TopicPartition, OffsetSpec> earliest = new HashMap<>();
        Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
        for (TopicPartition tp : partitions()) {
            earliest.put(tp, OffsetSpec.earliest());
            latest.put(tp, OffsetSpec.latest());
        }
        Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> e = admin.listOffsets(earliest).all().get();
        Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> l = admin.listOffsets(latest).all().get();
        for (TopicPartition tp : partitions()) {
            require(e.get(tp).offset() == 0, "%s earliest %d", tp, e.get(tp).offset());
            require(l.get(tp).offset() == expected.get(tp.partition()).size(), "%s latest %d", tp, l.get(tp).offset());
        }
    }

    void adminListOffsetsMaxTimestamp(Admin admin) throws Exception {
        // ListOffsets v7+ (KIP-734): offset of the record with the largest timestamp.
        Map<Integer, List<Sent>> expected = byPartition();
        Map<TopicPartition, OffsetSpec> spec = new HashMap<>();
        for (TopicPartition tp : partitions()) {
            spec.put(tp, OffsetSpec.maxTimestamp());
        }
        Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> r = admin.listOffsets(spec).all().get();
        for (TopicPartition tp : partitions()) {
            List<Sent> l = expected.get(tp.partition());
            if (l.isEmpty()) {
                continue;
            }
            Sent last = l.get(l.size() - 1);
            require(r.get(tp).offset() == last.offset() && r.get(tp).timestamp() == last.timestamp(),
                    "%s max timestamp: offset %d ts %d, expected offset %d ts %d",
                    tp, r.get(tp).offset(), r.get(tp).timestamp(), last.offset(), last.timestamp());
        }
    }

    void offsetsForTimes() {
        Map<Integer, List<Sent>> expected = byPartition();
        Map<TopicPartition, Long> query = new HashMap<>();
        Map<TopicPartition, Sent> want = new HashMap<>();
        for (TopicPartition tp : partitions()) {
            List<Sent> l = expected.get(tp.partition());
            if (l.size() < 2) {
                continue;
            }
            Sent mid = l.get(l.size() / 2);
            // Timestamps strictly increase along a partition, so the first record with
            // timestamp >= mid's is mid itself.
            query.put(tp, mid.timestamp());
            want.put(tp, mid);
        }
        query.put(new TopicPartition(topic, 0), Long.MAX_VALUE - 1); // past the end -> null
        want.remove(new TopicPartition(topic, 0));
        try (KafkaConsumer<byte[], byte[]> c = consumer()) {
            Map<TopicPartition, OffsetAndTimestamp> r = c.offsetsForTimes(query);
            want.forEach((tp, s) -> {
                OffsetAndTimestamp ot = r.get(tp);
                require(ot != null && ot.offset() == s.offset() && ot.timestamp() == s.timestamp(),
                        "%s for time %d: %s, expected offset %d ts %d", tp, s.timestamp(), ot, s.offset(), s.timestamp());
            });
            require(r.get(new TopicPartition(topic, 0)) == null, "future timestamp gave %s",
                    r.get(new TopicPartition(topic, 0)));
        }
    }

    // --- default (idempotent) producer ---------------------------------------------------

    void defaultProducer(Admin admin) throws Exception {
        admin.createTopics(List.of(new NewTopic(idemTopic, PARTITIONS, (short) 1))).all().get();
        // Nothing but bootstrap + serializers: kafka-clients 3.0+ defaults to
        // enable.idempotence=true, acks=all, so this needs InitProducerId and sequences.
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        int n = 60;
        Map<Integer, List<String>> sentBy = new TreeMap<>();
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p);
        try {
            List<Future<RecordMetadata>> futures = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                futures.add(producer.send(new ProducerRecord<>(idemTopic, bytes("k" + (i % 7)), bytes("idem-" + i))));
                if (i == n / 2) {
                    producer.flush(); // two rounds: the second continues the sequences
                }
            }
            producer.flush();
            for (int i = 0; i < n; i++) {
                RecordMetadata md = futures.get(i).get(30, TimeUnit.SECONDS);
                List<String> l = sentBy.computeIfAbsent(md.partition(), k -> new ArrayList<>());
                require(md.offset() == l.size(), "idem-%d: p%d offset %d, expected %d", i, md.partition(), md.offset(), l.size());
                l.add("idem-" + i);
            }
        } finally {
            producer.close(Duration.ofSeconds(5));
        }
        try (KafkaConsumer<byte[], byte[]> c = consumer()) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < PARTITIONS; i++) {
                tps.add(new TopicPartition(idemTopic, i));
            }
            c.assign(tps);
            c.seekToBeginning(tps);
            List<ConsumerRecord<byte[], byte[]>> got = pollUntil(c, n);
            require(got.size() == n, "read back %d of %d", got.size(), n);
            Map<Integer, List<String>> gotBy = new TreeMap<>();
            for (ConsumerRecord<byte[], byte[]> r : got) {
                List<String> l = gotBy.computeIfAbsent(r.partition(), k -> new ArrayList<>());
                require(r.offset() == l.size(), "p%d: offset %d at position %d", r.partition(), r.offset(), l.size());
                l.add(str(r.value()));
            }
            require(gotBy.equals(sentBy), "read back %s, sent %s", gotBy, sentBy);
        }
    }

    // --- consumer group round trip -------------------------------------------------------

    /**
     * One group consumer polled by its own thread (KafkaConsumer is single-threaded, and a
     * rebalance needs every member polling). Stopping goes in lock step over all members
     * (stopMembers): all stop polling, then all commitSync, then all close; were one
     * member to leave while another still polls, the survivor would rebalance and take
     * over partitions before committing.
     */
    final class GroupMember extends Thread {
        final List<ConsumerRecord<byte[], byte[]>> records = new ArrayList<>();
        volatile Set<Integer> assignment = Set.of();
        volatile String error;
        volatile boolean stop;
        final CountDownLatch paused = new CountDownLatch(1);
        final CountDownLatch commitGo = new CountDownLatch(1);
        final CountDownLatch committed = new CountDownLatch(1);
        final CountDownLatch closeGo = new CountDownLatch(1);

        GroupMember(String name) {
            super(name);
            setDaemon(true);
        }

        @Override
        public void run() {
            KafkaConsumer<byte[], byte[]> c = null;
            try {
                c = groupConsumer();
                c.subscribe(List.of(groupTopic));
                while (!stop) {
                    var got = c.poll(Duration.ofMillis(200));
                    synchronized (records) {
                        got.forEach(records::add);
                    }
                    assignment = c.assignment().stream().map(TopicPartition::partition).collect(Collectors.toSet());
                }
                paused.countDown();
                commitGo.await(60, TimeUnit.SECONDS);
                c.commitSync(Duration.ofSeconds(20)); // every assigned partition's position
            } catch (Throwable t) {
                error = t.toString();
            } finally {
                paused.countDown();
                committed.countDown();
                try {
                    closeGo.await(60, TimeUnit.SECONDS);
                    if (c != null) {
                        c.close(Duration.ofSeconds(10)); // LeaveGroup
                    }
                } catch (Throwable t) {
                    if (error == null) {
                        error = "close: " + t;
                    }
                }
            }
        }

        List<ConsumerRecord<byte[], byte[]>> records() {
            synchronized (records) {
                return new ArrayList<>(records);
            }
        }
    }

    KafkaConsumer<byte[], byte[]> groupConsumer() {
        Properties p = common();
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic"); // the default; KIP-848 is not implemented
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        // Heartbeat every second, so a rebalance completes in about a second.
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
        p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        return new KafkaConsumer<>(p);
    }

    void groupProduce(int n, String tag) throws Exception {
        Properties p = common();
        p.remove(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false");
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            List<Future<RecordMetadata>> futures = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                futures.add(producer.send(new ProducerRecord<>(groupTopic, i % PARTITIONS, bytes("g" + i), bytes(tag + "-" + i))));
            }
            producer.flush();
            for (Future<RecordMetadata> f : futures) {
                groupSent.merge(f.get(30, TimeUnit.SECONDS).partition(), 1, Integer::sum);
            }
        }
    }

    void waitFor(String what, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.currentTimeMillis() + 30_000;
        while (!cond.getAsBoolean()) {
            for (GroupMember m : members) {
                require(m.error == null, "%s: %s", m.getName(), m.error);
            }
            require(System.currentTimeMillis() < deadline, "timed out after 30s waiting for %s", what);
            Thread.sleep(100);
        }
    }

    void stopMembers() throws InterruptedException {
        List<GroupMember> ms = members;
        members = new ArrayList<>();
        for (GroupMember m : ms) {
            m.stop = true;
        }
        for (GroupMember m : ms) {
            m.paused.await(30, TimeUnit.SECONDS);
        }
        ms.forEach(m -> m.commitGo.countDown());
        for (GroupMember m : ms) {
            m.committed.await(30, TimeUnit.SECONDS);
        }
        ms.forEach(m -> m.closeGo.countDown());
        for (GroupMember m : ms) {
            m.join(30_000);
        }
        for (GroupMember m : ms) {
            require(!m.isAlive(), "%s did not commit+close within 30s", m.getName());
            require(m.error == null, "%s: %s", m.getName(), m.error);
        }
    }

    void groupJoin(Admin admin) throws Exception {
        admin.createTopics(List.of(new NewTopic(groupTopic, PARTITIONS, (short) 1))).all().get();
        GroupMember m1 = new GroupMember("member1");
        GroupMember m2 = new GroupMember("member2");
        members = new ArrayList<>(List.of(m1, m2));
        m1.start();
        // Alone, member1 owns everything; member2 joining forces a rebalance that splits them.
        waitFor("member1 to own all partitions", () -> m1.assignment.size() == PARTITIONS);
        m2.start();
        waitFor("the two members to split the partitions", () -> {
            Set<Integer> a1 = m1.assignment;
            Set<Integer> a2 = m2.assignment;
            Set<Integer> all = new java.util.HashSet<>(a1);
            all.addAll(a2);
            return !a1.isEmpty() && !a2.isEmpty() && a1.size() + a2.size() == PARTITIONS && all.size() == PARTITIONS;
        });
        System.out.println("  member1 owns " + m1.assignment + ", member2 owns " + m2.assignment);
    }

    @SuppressWarnings("deprecation") // listConsumerGroups: kept over listGroups on purpose, the common call
    Set<String> listedGroups(Admin admin) throws Exception {
        return admin.listConsumerGroups().all().get().stream().map(ConsumerGroupListing::groupId).collect(Collectors.toSet());
    }

    ConsumerGroupDescription describeGroup(Admin admin) throws Exception {
        return admin.describeConsumerGroups(List.of(group)).all().get().get(group);
    }

    void groupDescribeStable(Admin admin) throws Exception {
        require(listedGroups(admin).contains(group), "%s not in listConsumerGroups", group);
        ConsumerGroupDescription d = describeGroup(admin);
        require(d.groupState() == GroupState.STABLE, "state %s", d.groupState());
        require(!d.isSimpleConsumerGroup(), "simple consumer group: %s", d);
        require(List.of("range", "cooperative-sticky").contains(d.partitionAssignor()), "assignor %s", d.partitionAssignor());
        require(d.members().size() == 2, "%d members: %s", d.members().size(), d.members());
        List<Integer> owned = new ArrayList<>();
        for (MemberDescription m : d.members()) {
            require(!m.consumerId().isEmpty() && !m.clientId().isEmpty(), "member %s", m);
            List<Integer> ps = m.assignment().topicPartitions().stream()
                    .filter(tp -> tp.topic().equals(groupTopic)).map(TopicPartition::partition).toList();
            require(!ps.isEmpty(), "member %s owns nothing", m);
            owned.addAll(ps);
        }
        owned.sort(Integer::compare);
        require(owned.equals(List.of(0, 1, 2)), "assignments %s", owned);
    }

    void groupConsume() throws Exception {
        require(members.size() == 2, "members did not join");
        groupProduce(GROUP_N, "a");
        waitFor(GROUP_N + " records", () -> members.stream().mapToInt(m -> m.records().size()).sum() >= GROUP_N);
        Thread.sleep(500); // room for duplicates to show up
        Map<String, String> seen = new HashMap<>();
        Map<Integer, Set<String>> owners = new HashMap<>();
        for (GroupMember m : members) {
            Set<Integer> owned = m.assignment;
            for (ConsumerRecord<byte[], byte[]> r : m.records()) {
                String where = "p" + r.partition() + "@" + r.offset();
                require(!seen.containsKey(where), "%s consumed twice (%s and %s)", where, seen.get(where), m.getName());
                seen.put(where, m.getName());
                require(owned.contains(r.partition()), "%s got %s but owns %s", m.getName(), where, owned);
                owners.computeIfAbsent(r.partition(), k -> new java.util.HashSet<>()).add(m.getName());
            }
        }
        require(seen.size() == GROUP_N, "consumed %d of %d", seen.size(), GROUP_N);
        owners.forEach((p, o) -> require(o.size() == 1, "partition %d read by %s", p, o));
    }

    Map<Integer, Long> committedOffsets(Admin admin) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> offs =
                admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
        Map<Integer, Long> got = new TreeMap<>();
        offs.forEach((tp, om) -> {
            if (tp.topic().equals(groupTopic) && om != null) {
                got.put(tp.partition(), om.offset());
            }
        });
        return got;
    }

    Map<Integer, Long> expectedOffsets() {
        Map<Integer, Long> want = new TreeMap<>();
        groupSent.forEach((p, n) -> want.put(p, (long) n));
        return want;
    }

    void groupOffsetsCommitted(Admin admin) throws Exception {
        Map<Integer, Long> got = committedOffsets(admin);
        require(got.equals(expectedOffsets()), "committed %s, expected %s", got, expectedOffsets());
        ConsumerGroupDescription d = describeGroup(admin);
        require(d.groupState() == GroupState.EMPTY && d.members().isEmpty(), "after close: state %s, %d members",
                d.groupState(), d.members().size());
    }

    void groupResume() throws Exception {
        Map<Integer, Integer> before = new TreeMap<>(groupSent);
        groupProduce(GROUP_M, "b");
        GroupMember m = new GroupMember("member3");
        members = new ArrayList<>(List.of(m));
        m.start();
        waitFor(GROUP_M + " new records", () -> m.records().size() >= GROUP_M);
        Thread.sleep(1000); // anything before the committed offsets would arrive with them
        List<ConsumerRecord<byte[], byte[]>> recs = m.records();
        require(m.assignment.equals(Set.of(0, 1, 2)), "member3 owns %s", m.assignment);
        List<String> old = recs.stream().filter(r -> r.offset() < before.get(r.partition()))
                .map(r -> "p" + r.partition() + "@" + r.offset()).limit(10).toList();
        require(old.isEmpty(), "re-read records before the committed offsets: %s", old);
        require(recs.size() == GROUP_M, "got %d records, expected %d", recs.size(), GROUP_M);
    }

    void groupDeleteNonEmpty(Admin admin) throws Exception {
        require(!members.isEmpty(), "member3 not running");
        try {
            admin.deleteConsumerGroups(List.of(group)).all().get();
            throw new AssertionError("deleting a group with a live member succeeded");
        } catch (ExecutionException e) {
            require(e.getCause() instanceof GroupNotEmptyException, "expected GroupNotEmptyException, got %s", e.getCause());
        }
    }

    void groupDelete(Admin admin) throws Exception {
        stopMembers();
        Map<Integer, Long> got = committedOffsets(admin);
        require(got.equals(expectedOffsets()), "committed %s, expected %s", got, expectedOffsets());
        admin.deleteConsumerGroups(List.of(group)).all().get();
        require(!listedGroups(admin).contains(group), "%s still listed after delete", group);
        got = committedOffsets(admin);
        require(got.isEmpty(), "offsets survive the delete: %s", got);
    }

    public static void main(String[] args) {
        if (args.length < 1) {
            System.err.println("usage: Compat BOOTSTRAP [TOPIC_PREFIX]");
            System.exit(2);
        }
        String prefix = args.length > 1 ? args[1] : "compat-" + System.currentTimeMillis();
        Compat c = new Compat(args[0], prefix);
        c.run();
        System.exit(c.failed == 0 ? 0 : 1);
    }
}
