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
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
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
 * <p>What the broker has today shapes the client settings: no idempotent producer
 * (enable.idempotence=false) and no consumer groups (assign(), no group.id, no commits).
 */
public final class Compat {
    static final int PARTITIONS = 3;
    static final String[] CODECS = {"lz4", "zstd", "gzip", "snappy", "none"};
    static final int PER_CODEC = 100;
    static final int KEYS = 17;

    final String bootstrap;
    final String topic;
    final String topic2;
    int passed;
    int failed;

    /** What the producer was told, by partition then offset, to compare with what we fetch. */
    record Sent(String key, String value, int index, long timestamp, int partition, long offset) {}

    final List<Sent> sent = new ArrayList<>();

    Compat(String bootstrap, String prefix) {
        this.bootstrap = bootstrap;
        this.topic = prefix + "-java";
        this.topic2 = prefix + "-java-grow";
    }

    interface Check {
        void run() throws Exception;
    }

    void check(String name, Check c) {
        try {
            c.run();
            passed++;
            System.out.println("PASS java." + name);
        } catch (Throwable t) {
            failed++;
            Throwable root = t;
            if (root instanceof ExecutionException && root.getCause() != null) {
                root = root.getCause();
            }
            String msg = root.getClass().getName() + ": " + root.getMessage();
            if (root.getCause() != null && root.getCause() != root) {
                msg += " (caused by " + root.getCause() + ")";
            }
            System.out.println("FAIL java." + name + ": " + msg.replace('\n', ' '));
        }
        System.out.flush();
    }

    static void require(boolean ok, String fmt, Object... args) {
        if (!ok) {
            throw new AssertionError(String.format(fmt, args));
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
