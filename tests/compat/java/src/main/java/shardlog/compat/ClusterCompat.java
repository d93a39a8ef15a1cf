package shardlog.compat;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.QuorumInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The Java client against a cluster of shardlog nodes (what {@code kafka-topics --describe},
 * {@code kafka-metadata-quorum describe} and {@code kafka-cluster} ask for, through Admin).
 *
 * <p>Usage: {@code ClusterCompat BOOTSTRAP NODES TOPIC_PREFIX}, BOOTSTRAP naming every node.
 * Prints {@code PASS java-cluster.NAME} / {@code FAIL java-cluster.NAME: why}; exits 1 if any
 * failed.
 */
public final class ClusterCompat extends Checks {
    final String bootstrap;
    final int nodes;
    final String topic;

    ClusterCompat(String bootstrap, int nodes, String prefix) {
        super("java-cluster");
        this.bootstrap = bootstrap;
        this.nodes = nodes;
        this.topic = prefix + "-cluster";
    }

    Properties props(String servers) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, servers);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        return p;
    }

    void run() throws Exception {
        try (Admin admin = Admin.create(props(bootstrap))) {
            check("describeClusterListsEveryBroker", () -> {
                var c = admin.describeCluster();
                Set<Integer> ids = c.nodes().get().stream().map(Node::id)
                    .collect(Collectors.toCollection(TreeSet::new));
                require(ids.size() == nodes, "brokers %s", ids);
                Node controller = c.controller().get();
                require(controller != null && ids.contains(controller.id()), "controller %s", controller);
            });

            // Through each node alone: a follower asks the quorum's leader.
            String[] each = bootstrap.split(",");
            for (int i = 0; i < each.length; i++) {
                String one = each[i];
                check("describeMetadataQuorumViaNode" + (i + 1), () -> {
                    try (Admin single = Admin.create(props(one))) {
                        QuorumInfo q = single.describeMetadataQuorum().quorumInfo().get();
                        require(q.voters().size() == nodes, "voters %s", q.voters());
                        require(q.voters().stream().anyMatch(v -> v.replicaId() == q.leaderId()),
                            "leader %d is not a voter", q.leaderId());
                    }
                });
            }

            check("createTopicSpreadsLeaders", () -> {
                admin.createTopics(List.of(new NewTopic(topic, 2 * nodes, (short) 1))).all().get();
                TopicDescription d = null;
                for (int i = 0; i < 50; i++) {
                    d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
                    if (d != null && d.partitions().stream().allMatch(p -> p.leader() != null)) {
                        break;
                    }
                    Thread.sleep(100);
                }
                require(d != null, "no description");
                Set<Integer> leaders = d.partitions().stream().map(TopicPartitionInfo::leader)
                    .map(Node::id).collect(Collectors.toCollection(TreeSet::new));
                require(leaders.size() == nodes, "leaders %s", leaders);
                for (TopicPartitionInfo p : d.partitions()) {
                    require(p.replicas().size() == 1 && p.isr().equals(p.replicas()),
                        "partition %d: replicas %s isr %s", p.partition(), p.replicas(), p.isr());
                }
            });

            check("replicationFactorAboveOneIsRefused", () -> {
                try {
                    admin.createTopics(List.of(new NewTopic(topic + "-rf3", 1, (short) 3))).all().get();
                    throw new AssertionError("created");
                } catch (ExecutionException e) {
                    require(e.getCause() instanceof org.apache.kafka.common.errors.InvalidReplicationFactorException,
                        "got %s", e.getCause());
                }
            });
        }

        check("produceAndConsumeAcrossBrokers", () -> {
            int n = 300;
            Properties pp = props(bootstrap);
            pp.put(ProducerConfig.ACKS_CONFIG, "all");
            try (KafkaProducer<byte[], byte[]> p =
                     new KafkaProducer<>(pp, new ByteArraySerializer(), new ByteArraySerializer())) {
                for (int i = 0; i < n; i++) {
                    p.send(new ProducerRecord<>(topic, ("k" + i).getBytes(StandardCharsets.UTF_8),
                        ("v" + i).getBytes(StandardCharsets.UTF_8))).get();
                }
            }
            Properties cp = props(bootstrap);
            cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            try (KafkaConsumer<byte[], byte[]> c =
                     new KafkaConsumer<>(cp, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
                List<TopicPartition> parts = new ArrayList<>();
                for (int i = 0; i < 2 * nodes; i++) {
                    parts.add(new TopicPartition(topic, i));
                }
                c.assign(parts);
                c.seekToBeginning(parts);
                Set<String> seen = new TreeSet<>();
                long deadline = System.currentTimeMillis() + 30_000;
                while (seen.size() < n && System.currentTimeMillis() < deadline) {
                    for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                        seen.add(new String(r.value(), StandardCharsets.UTF_8));
                    }
                }
                require(seen.size() == n, "read %d of %d", seen.size(), n);
            }
        });
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: ClusterCompat BOOTSTRAP NODES TOPIC_PREFIX");
            System.exit(2);
        }
        ClusterCompat c = new ClusterCompat(args[0], Integer.parseInt(args[1]), args[2]);
        c.run();
        System.exit(c.failed == 0 ? 0 : 1);
    }
}
