//! Consumer groups end to end with librdkafka consumers: assignment spread, leave, crash (a child
//! process killed with SIGKILL, so no LeaveGroup), cooperative-sticky incremental rebalance,
//! manual commits surviving a broker kill -9, simple (assign + commit) commits, and the operator
//! view (ListGroups/DescribeGroups/DeleteGroups) through rdkafka.
//!
//! Brokers run with `group.initial.rebalance.delay.ms=0` so joins are not delayed 3 s, and with
//! two shards so groups and topics spread over both.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const CHILD_ENV: &str = "SHARDLOG_TEST_CHILD_CONSUMER";

fn broker() -> Broker {
    Broker::start(
        BrokerOpts::default()
            .cores(2)
            .set("group.initial.rebalance.delay.ms", "0")
            .set("offsets.topic.num.partitions", "8"),
    )
}

fn group_config(bootstrap: &str, group: &str, strategy: &str) -> ClientConfig {
    let mut c = base_config(bootstrap);
    c.set("group.id", group)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("max.poll.interval.ms", "20000")
        .set("partition.assignment.strategy", strategy)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("enable.partition.eof", "false");
    c
}

fn group_consumer(b: &Broker, group: &str, strategy: &str, topic: &str) -> BaseConsumer {
    let c: BaseConsumer = group_config(&b.bootstrap(), group, strategy)
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    c
}

/// Partitions of `topic` currently assigned to `c`.
fn owned(c: &BaseConsumer, topic: &str) -> BTreeSet<i32> {
    c.assignment()
        .map(|tpl| {
            tpl.elements()
                .iter()
                .filter(|e| e.topic() == topic)
                .map(|e| e.partition())
                .collect()
        })
        .unwrap_or_default()
}

/// Polls every consumer (rebalance callbacks run inside poll) until `cond` holds.
fn poll_until(
    consumers: &[&BaseConsumer],
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        for c in consumers {
            let _ = c.poll(Duration::from_millis(20));
        }
        if cond() {
            return true;
        }
    }
    false
}

/// The assignment sizes are `want` (in any order) and together cover all `partitions`.
fn spread_is(consumers: &[&BaseConsumer], topic: &str, partitions: i32, want: &[usize]) -> bool {
    let sets: Vec<BTreeSet<i32>> = consumers.iter().map(|c| owned(c, topic)).collect();
    let mut sizes: Vec<usize> = sets.iter().map(|s| s.len()).collect();
    sizes.sort_unstable();
    let mut want = want.to_vec();
    want.sort_unstable();
    let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
    let total: usize = sizes.iter().sum();
    sizes == want && total == partitions as usize && union.len() == partitions as usize
}

#[test]
fn three_members_split_twelve_partitions_and_survivors_take_over_on_leave() {
    let b = broker();
    b.create_topic("spread", 12, &[]);
    let c1 = group_consumer(&b, "g-spread", "range", "spread");
    let c2 = group_consumer(&b, "g-spread", "range", "spread");
    let c3 = group_consumer(&b, "g-spread", "roundrobin,range", "spread");
    let all = [&c1, &c2, &c3];
    assert!(
        poll_until(&all, Duration::from_secs(30), || spread_is(
            &all,
            "spread",
            12,
            &[4, 4, 4]
        )),
        "3 members should own 4 partitions each: {:?}",
        all.iter().map(|c| owned(c, "spread")).collect::<Vec<_>>()
    );

    // The operator view while stable.
    let groups = c1
        .fetch_group_list(Some("g-spread"), Duration::from_secs(10))
        .expect("group list");
    let g = &groups.groups()[0];
    assert_eq!(g.state(), "Stable");
    assert_eq!(g.protocol_type(), "consumer");
    assert_eq!(
        g.protocol(),
        "range",
        "range is the only protocol all support"
    );
    assert_eq!(g.members().len(), 3);

    // One member leaves (close sends LeaveGroup): the other two own everything, well within
    // the rebalance timeout.
    let started = Instant::now();
    drop(c3);
    let two = [&c1, &c2];
    assert!(
        poll_until(&two, Duration::from_secs(15), || spread_is(
            &two,
            "spread",
            12,
            &[6, 6]
        )),
        "after a leave 2 members own 6 each: {:?}",
        two.iter().map(|c| owned(c, "spread")).collect::<Vec<_>>()
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "a leave must not wait for a session timeout"
    );
}

/// Run as a child process by `killed_member_partitions_move_after_session_timeout`: a group
/// member that polls until it is killed with SIGKILL.
#[test]
#[ignore]
fn child_consumer_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, ',');
    let (Some(bootstrap), Some(group), Some(topic)) = (parts.next(), parts.next(), parts.next())
    else {
        panic!("bad {CHILD_ENV}: {spec}");
    };
    let c: BaseConsumer = group_config(bootstrap, group, "range").create().unwrap();
    c.subscribe(&[topic]).unwrap();
    loop {
        let _ = c.poll(Duration::from_millis(100));
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn killed_member_partitions_move_after_session_timeout() {
    let b = broker();
    b.create_topic("crash", 12, &[]);
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_consumer_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, format!("{},g-crash,crash", b.bootstrap()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn child consumer");
    let mut child = KillOnDrop(child);
    let c1 = group_consumer(&b, "g-crash", "range", "crash");
    let c2 = group_consumer(&b, "g-crash", "range", "crash");
    let two = [&c1, &c2];
    // The child holds the remaining 4.
    assert!(
        poll_until(&two, Duration::from_secs(30), || {
            let mut s: Vec<usize> = two.iter().map(|c| owned(c, "crash").len()).collect();
            s.sort_unstable();
            s == [4, 4]
        }),
        "with the child, the two local members own 4 each: {:?}",
        two.iter().map(|c| owned(c, "crash")).collect::<Vec<_>>()
    );
    let killed = Instant::now();
    child.0.kill().expect("SIGKILL the child");
    let _ = child.0.wait();
    assert!(
        poll_until(&two, Duration::from_secs(25), || spread_is(
            &two,
            "crash",
            12,
            &[6, 6]
        )),
        "the killed member's partitions move: {:?}",
        two.iter().map(|c| owned(c, "crash")).collect::<Vec<_>>()
    );
    let took = killed.elapsed();
    // No LeaveGroup was sent: only the 6 s session timeout could have removed it.
    assert!(
        took >= Duration::from_secs(4),
        "moved after {took:?}, before the session timeout"
    );
}

#[test]
fn cooperative_sticky_moves_only_what_it_must() {
    let b = broker();
    b.create_topic("coop", 12, &[]);
    let c1 = group_consumer(&b, "g-coop", "cooperative-sticky", "coop");
    let c2 = group_consumer(&b, "g-coop", "cooperative-sticky", "coop");
    let two = [&c1, &c2];
    assert!(
        poll_until(&two, Duration::from_secs(30), || spread_is(
            &two,
            "coop",
            12,
            &[6, 6]
        )),
        "2 members own 6 each: {:?}",
        two.iter().map(|c| owned(c, "coop")).collect::<Vec<_>>()
    );
    let before = [owned(&c1, "coop"), owned(&c2, "coop")];
    let c3 = group_consumer(&b, "g-coop", "cooperative-sticky", "coop");
    let three = [&c1, &c2, &c3];
    // Track whether a partition ever left its owner and came back (a full revoke would).
    let mut lost: [BTreeSet<i32>; 2] = [BTreeSet::new(), BTreeSet::new()];
    assert!(
        poll_until(&three, Duration::from_secs(30), || {
            for (i, c) in [&c1, &c2].iter().enumerate() {
                let now = owned(c, "coop");
                lost[i].extend(before[i].difference(&now).copied());
            }
            spread_is(&three, "coop", 12, &[4, 4, 4])
        }),
        "3 members own 4 each: {:?}",
        three.iter().map(|c| owned(c, "coop")).collect::<Vec<_>>()
    );
    for i in 0..2 {
        let now = owned(three[i], "coop");
        assert!(
            now.is_subset(&before[i]),
            "member {i} only lost partitions: {before:?} -> {now:?}"
        );
        // Exactly 2 partitions moved from each old member; the 4 it kept were never revoked.
        assert_eq!(
            lost[i].len(),
            2,
            "member {i} gave up exactly 2: {:?}",
            lost[i]
        );
    }
}

#[test]
fn manual_commits_survive_broker_kill_and_consumption_resumes_exactly() {
    const N: usize = 400;
    const PARTS: i32 = 4;
    let mut b = broker();
    b.create_topic("resume", PARTS, &[]);
    let mut p = b.producer();
    for i in 0..N {
        p.send(
            "resume",
            Some((i % 4) as i32),
            None,
            format!("m{i}").as_bytes(),
            None,
        );
    }
    assert!(p
        .flush(Duration::from_secs(30))
        .iter()
        .all(|d| d.error.is_none()));
    // Close the producer's connections: a live client keeps the killed broker's side of its
    // sockets in FIN_WAIT2, which blocks re-binding the port.
    drop(p);

    // First consumer: process about half, committing after processing (every 10 messages).
    let mut processed: BTreeSet<(i32, i64)> = BTreeSet::new();
    let mut committed: BTreeMap<i32, i64> = BTreeMap::new();
    {
        let c = group_consumer(&b, "g-resume", "range", "resume");
        let mut since_commit: HashMap<i32, i64> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while processed.len() < N / 2 && Instant::now() < deadline {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                processed.insert((m.partition(), m.offset()));
                since_commit.insert(m.partition(), m.offset() + 1);
                if processed.len() % 10 == 0 {
                    let mut tpl = TopicPartitionList::new();
                    for (part, next) in since_commit.drain() {
                        tpl.add_partition_offset("resume", part, Offset::Offset(next))
                            .unwrap();
                        committed.insert(part, next);
                    }
                    c.commit(&tpl, CommitMode::Sync).expect("commit");
                }
            }
        }
        assert!(processed.len() >= N / 2, "consumed {}", processed.len());
        // A few more processed but never committed: at-least-once redelivers them.
        let mut extra = 0;
        while extra < 5 && Instant::now() < deadline {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                processed.insert((m.partition(), m.offset()));
                extra += 1;
            }
        }
        // Committed offsets as the group sees them.
        let seen = c
            .committed(Duration::from_secs(10))
            .expect("committed offsets");
        for e in seen.elements() {
            if let Offset::Offset(o) = e.offset() {
                assert_eq!(committed.get(&e.partition()), Some(&o));
            }
        }
    }

    b.kill9();
    b.restart();

    let c = group_consumer(&b, "g-resume", "range", "resume");
    let mut first_seen: BTreeMap<i32, i64> = BTreeMap::new();
    let mut second: BTreeSet<(i32, i64)> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let everything: BTreeSet<(i32, i64)> = (0..PARTS)
        .flat_map(|p| (0..(N as i64 / PARTS as i64)).map(move |o| (p, o)))
        .collect();
    while Instant::now() < deadline {
        let committed_part: BTreeSet<(i32, i64)> = everything
            .iter()
            .filter(|(p, o)| *o < committed.get(p).copied().unwrap_or(0))
            .copied()
            .collect();
        if committed_part.union(&second).count() == everything.len() {
            break;
        }
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            first_seen.entry(m.partition()).or_insert(m.offset());
            second.insert((m.partition(), m.offset()));
        }
    }
    for part in 0..PARTS {
        let want = committed.get(&part).copied().unwrap_or(0);
        assert_eq!(
            first_seen.get(&part).copied(),
            Some(want).filter(|w| *w < N as i64 / PARTS as i64),
            "partition {part} resumes exactly at its committed offset"
        );
    }
    // Nothing lost: committed-before-restart + consumed-after covers every message.
    let mut union = second.clone();
    for (p, next) in &committed {
        union.extend((0..*next).map(|o| (*p, o)));
    }
    assert_eq!(union, everything, "every message consumed at least once");
}

#[test]
fn simple_commits_with_assign_and_group_admin() {
    let b = broker();
    b.create_topic("simple", 3, &[]);
    let c: BaseConsumer = group_config(&b.bootstrap(), "g-simple", "range")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("simple", p, Offset::Offset(10 + i64::from(p)))
            .unwrap();
    }
    // No subscribe: generation -1 commits, as assign() users make.
    c.commit(&tpl, CommitMode::Sync).expect("simple commit");
    let got = c
        .committed_offsets(tpl.clone(), Duration::from_secs(10))
        .expect("fetch committed");
    for e in got.elements() {
        assert_eq!(e.offset(), Offset::Offset(10 + i64::from(e.partition())));
    }
    // Listed as an Empty group with no protocol type.
    let list = c.fetch_group_list(None, Duration::from_secs(10)).unwrap();
    let g = list
        .groups()
        .iter()
        .find(|g| g.name() == "g-simple")
        .expect("listed");
    assert_eq!(g.state(), "Empty");
    // A new client sees the same offsets; after DeleteGroups they are gone.
    let admin = b.admin();
    let res = block_on(admin.delete_groups(&["g-simple", "no-such-group"], &admin_opts())).unwrap();
    assert!(res[0].is_ok(), "{res:?}");
    assert!(res[1].is_err(), "unknown group: {res:?}");
    let c2: BaseConsumer = group_config(&b.bootstrap(), "g-simple", "range")
        .create()
        .unwrap();
    let got = c2
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("fetch committed");
    assert!(got.elements().iter().all(|e| e.offset() == Offset::Invalid));
}

#[test]
fn delete_of_active_group_is_refused() {
    let b = broker();
    b.create_topic("busy", 2, &[]);
    let c = group_consumer(&b, "g-busy", "range", "busy");
    assert!(poll_until(&[&c], Duration::from_secs(20), || owned(
        &c, "busy"
    )
    .len()
        == 2));
    let admin = b.admin();
    let res = block_on(admin.delete_groups(&["g-busy"], &admin_opts())).unwrap();
    match &res[0] {
        Err((_, code)) => assert_eq!(
            *code,
            rdkafka::types::RDKafkaErrorCode::NonEmptyGroup,
            "{res:?}"
        ),
        Ok(_) => panic!("deleting a group with members must fail"),
    }
}
