//! SHARDLOG PATCH: hostile-input decoding tests (see SHARDLOG_PATCH.md).
//!
//! Every decoding entry point a broker exposes to the network must return `Ok` or `Err` on any
//! input: no panic, and no allocation sized by an untrusted length. A counting global allocator
//! records every single allocation larger than `BIG_ALLOC` (64 MiB); the tests assert that none
//! happened. (Allocations above `HARD_ALLOC` are refused outright, which aborts the test binary
//! with "memory allocation of N bytes failed" -- that, too, is a failure.)
#![cfg(all(feature = "client", feature = "broker"))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{
    decode_request_header_from_buffer, encode_request_header_into_buffer, Decodable, Encodable,
    StrBytes,
};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

// ---------------------------------------------------------------------------------------------
// Allocation guard
// ---------------------------------------------------------------------------------------------

const BIG_ALLOC: usize = 64 << 20;
const HARD_ALLOC: usize = 1 << 30;

static BIG_ALLOCS: AtomicUsize = AtomicUsize::new(0);
static LARGEST_BIG_ALLOC: AtomicUsize = AtomicUsize::new(0);

struct GuardAlloc;

impl GuardAlloc {
    #[inline]
    fn note(size: usize) -> bool {
        if size > BIG_ALLOC {
            BIG_ALLOCS.fetch_add(1, Ordering::SeqCst);
            LARGEST_BIG_ALLOC.fetch_max(size, Ordering::SeqCst);
            return size <= HARD_ALLOC;
        }
        true
    }
}

unsafe impl GlobalAlloc for GuardAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::note(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::note(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !Self::note(new_size) {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: GuardAlloc = GuardAlloc;

/// Collects failures so one test reports every offending input instead of only the first.
#[derive(Default)]
struct Failures {
    cases: usize,
    list: Vec<String>,
}

impl Failures {
    /// Runs `f` (a decode) and records a failure if it panicked or made a big allocation.
    fn check(&mut self, what: impl FnOnce() -> String, f: impl FnOnce()) {
        self.cases += 1;
        let before = BIG_ALLOCS.load(Ordering::SeqCst);
        let res = catch_unwind(AssertUnwindSafe(f));
        let after = BIG_ALLOCS.load(Ordering::SeqCst);
        if let Err(payload) = res {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            self.push(format!("PANIC ({msg}) in {}", what()));
        } else if after != before {
            self.push(format!(
                "ALLOCATION > {BIG_ALLOC} bytes (largest so far {}) in {}",
                LARGEST_BIG_ALLOC.load(Ordering::SeqCst),
                what()
            ));
        }
    }
    fn push(&mut self, s: String) {
        if self.list.len() < 50 {
            self.list.push(s);
        } else if self.list.len() == 50 {
            self.list.push("...".into());
        }
    }
    fn assert_none(&self, name: &str) {
        assert!(
            self.list.is_empty(),
            "{name}: {} of {} cases failed:\n{}",
            self.list.len(),
            self.cases,
            self.list.join("\n")
        );
        assert_eq!(
            BIG_ALLOCS.load(Ordering::SeqCst),
            0,
            "{name}: big allocation seen"
        );
    }
}

fn hex(b: &[u8]) -> String {
    let shown: Vec<String> = b.iter().take(48).map(|x| format!("{x:02x}")).collect();
    format!(
        "[{} bytes] {}{}",
        b.len(),
        shown.join(" "),
        if b.len() > 48 { " .." } else { "" }
    )
}

/// Small deterministic PRNG (xorshift64*), so failures are reproducible without new deps.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Lengths that, read as i16/i32/varint/compact, claim far more data than exists.
const HOSTILE_PATTERNS: &[&[u8]] = &[
    &[0x3f, 0xff, 0xff, 0xff],
    &[0x7f, 0xff, 0xff, 0xff],
    &[0xff, 0xff, 0xff, 0xff],
    &[0x7f, 0xff],
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0xfe, 0xff, 0xff, 0xff, 0x07],
    &[0x80, 0x80, 0x80, 0x80, 0x08],
    &[0x00, 0x00, 0x00, 0x00],
];

/// All hostile inputs derived from a valid encoding `valid` of some message.
fn hostile_inputs(valid: &[u8], rng: &mut Rng, random_cases: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    // (a), (b): the bytes `3f ff ff ff` / `ff ff ff ff` / ... repeated, at several lengths.
    for p in HOSTILE_PATTERNS {
        for reps in [1usize, 2, 3, 8, 64] {
            out.push(p.iter().copied().cycle().take(p.len() * reps).collect());
        }
    }
    out.push(vec![]);
    out.push(vec![0xff; 1024]);
    // (c) random byte strings.
    for _ in 0..random_cases {
        let len = match rng.below(4) {
            0 => rng.below(8),
            1 => rng.below(32),
            2 => rng.below(128),
            _ => rng.below(1024),
        };
        out.push(rng.bytes(len));
    }
    // (d) every truncation of the valid encoding.
    for n in 0..valid.len() {
        out.push(valid[..n].to_vec());
    }
    // (e) the valid encoding with a hostile length written at every offset, and random mutations.
    for p in HOSTILE_PATTERNS {
        for off in 0..=valid.len() {
            let mut v = valid.to_vec();
            for (i, b) in p.iter().enumerate() {
                if off + i < v.len() {
                    v[off + i] = *b;
                } else {
                    v.push(*b);
                }
            }
            out.push(v);
        }
    }
    if !valid.is_empty() {
        for _ in 0..random_cases / 4 {
            let mut v = valid.to_vec();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            out.push(v);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

const RANDOM_CASES_PER_VERSION: usize = 2000;

/// Fuzzes one message type at one version. Also checks that the default value round-trips, so
/// the length checks do not reject valid input.
fn fuzz_message<T>(
    label: &str,
    version: i16,
    rng: &mut Rng,
    random_cases: usize,
    failures: &mut Failures,
) where
    T: Decodable + Encodable + Default + PartialEq + std::fmt::Debug,
{
    let default = T::default();
    let mut enc = BytesMut::new();
    let valid: Vec<u8> = match default.encode(&mut enc, version) {
        Ok(()) => {
            let valid = enc.to_vec();
            let mut b = Bytes::from(valid.clone());
            match T::decode(&mut b, version) {
                Ok(v) => {
                    if v != default {
                        failures.push(format!("{label} v{version}: default does not round-trip"));
                    }
                }
                Err(e) => failures.push(format!(
                    "{label} v{version}: valid default encoding rejected: {e:#} {}",
                    hex(&valid)
                )),
            }
            valid
        }
        Err(_) => Vec::new(),
    };
    for input in hostile_inputs(&valid, rng, random_cases) {
        failures.check(
            || format!("{label} v{version} decode of {}", hex(&input)),
            || {
                let mut b = Bytes::from(input.clone());
                let _ = T::decode(&mut b, version);
                let mut s: &[u8] = &input;
                let _ = T::decode(&mut s, version);
            },
        );
    }
}

macro_rules! for_each_api {
    ($($key:ident, $req:ident, $resp:ident);* $(;)?) => {
        /// Fuzzes the request (and, with fewer cases, the response) type of `key` at `version`.
        /// Returns false for an API key this list does not know.
        fn fuzz_api(
            key: ApiKey,
            version: i16,
            rng: &mut Rng,
            failures: &mut Failures,
        ) -> bool {
            match key {
                $(
                    ApiKey::$key => {
                        fuzz_message::<$req>(
                            stringify!($req), version, rng, RANDOM_CASES_PER_VERSION, failures,
                        );
                        fuzz_message::<$resp>(
                            stringify!($resp), version, rng, RANDOM_CASES_PER_VERSION / 10,
                            failures,
                        );
                        true
                    }
                )*
                #[allow(unreachable_patterns)]
                _ => false,
            }
        }
    };
}

macro_rules! api_list {
    ($(($key:ident, $req:ident, $resp:ident)),* $(,)?) => {
        for_each_api! { $($key, $req, $resp);* }
    };
}

api_list! {
        (Produce, ProduceRequest, ProduceResponse),
        (Fetch, FetchRequest, FetchResponse),
        (ListOffsets, ListOffsetsRequest, ListOffsetsResponse),
        (Metadata, MetadataRequest, MetadataResponse),
        (OffsetCommit, OffsetCommitRequest, OffsetCommitResponse),
        (OffsetFetch, OffsetFetchRequest, OffsetFetchResponse),
        (FindCoordinator, FindCoordinatorRequest, FindCoordinatorResponse),
        (JoinGroup, JoinGroupRequest, JoinGroupResponse),
        (Heartbeat, HeartbeatRequest, HeartbeatResponse),
        (LeaveGroup, LeaveGroupRequest, LeaveGroupResponse),
        (SyncGroup, SyncGroupRequest, SyncGroupResponse),
        (DescribeGroups, DescribeGroupsRequest, DescribeGroupsResponse),
        (ListGroups, ListGroupsRequest, ListGroupsResponse),
        (SaslHandshake, SaslHandshakeRequest, SaslHandshakeResponse),
        (ApiVersions, ApiVersionsRequest, ApiVersionsResponse),
        (CreateTopics, CreateTopicsRequest, CreateTopicsResponse),
        (DeleteTopics, DeleteTopicsRequest, DeleteTopicsResponse),
        (DeleteRecords, DeleteRecordsRequest, DeleteRecordsResponse),
        (InitProducerId, InitProducerIdRequest, InitProducerIdResponse),
        (OffsetForLeaderEpoch, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse),
        (AddPartitionsToTxn, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse),
        (AddOffsetsToTxn, AddOffsetsToTxnRequest, AddOffsetsToTxnResponse),
        (EndTxn, EndTxnRequest, EndTxnResponse),
        (WriteTxnMarkers, WriteTxnMarkersRequest, WriteTxnMarkersResponse),
        (TxnOffsetCommit, TxnOffsetCommitRequest, TxnOffsetCommitResponse),
        (DescribeAcls, DescribeAclsRequest, DescribeAclsResponse),
        (CreateAcls, CreateAclsRequest, CreateAclsResponse),
        (DeleteAcls, DeleteAclsRequest, DeleteAclsResponse),
        (DescribeConfigs, DescribeConfigsRequest, DescribeConfigsResponse),
        (AlterConfigs, AlterConfigsRequest, AlterConfigsResponse),
        (AlterReplicaLogDirs, AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse),
        (DescribeLogDirs, DescribeLogDirsRequest, DescribeLogDirsResponse),
        (SaslAuthenticate, SaslAuthenticateRequest, SaslAuthenticateResponse),
        (CreatePartitions, CreatePartitionsRequest, CreatePartitionsResponse),
        (CreateDelegationToken, CreateDelegationTokenRequest, CreateDelegationTokenResponse),
        (RenewDelegationToken, RenewDelegationTokenRequest, RenewDelegationTokenResponse),
        (ExpireDelegationToken, ExpireDelegationTokenRequest, ExpireDelegationTokenResponse),
        (DescribeDelegationToken, DescribeDelegationTokenRequest, DescribeDelegationTokenResponse),
        (DeleteGroups, DeleteGroupsRequest, DeleteGroupsResponse),
        (ElectLeaders, ElectLeadersRequest, ElectLeadersResponse),
        (IncrementalAlterConfigs, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse),
        (AlterPartitionReassignments, AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse),
        (ListPartitionReassignments, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse),
        (OffsetDelete, OffsetDeleteRequest, OffsetDeleteResponse),
        (DescribeClientQuotas, DescribeClientQuotasRequest, DescribeClientQuotasResponse),
        (AlterClientQuotas, AlterClientQuotasRequest, AlterClientQuotasResponse),
        (DescribeUserScramCredentials, DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse),
        (AlterUserScramCredentials, AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse),
        (Vote, VoteRequest, VoteResponse),
        (BeginQuorumEpoch, BeginQuorumEpochRequest, BeginQuorumEpochResponse),
        (EndQuorumEpoch, EndQuorumEpochRequest, EndQuorumEpochResponse),
        (DescribeQuorum, DescribeQuorumRequest, DescribeQuorumResponse),
        (AlterPartition, AlterPartitionRequest, AlterPartitionResponse),
        (UpdateFeatures, UpdateFeaturesRequest, UpdateFeaturesResponse),
        (Envelope, EnvelopeRequest, EnvelopeResponse),
        (FetchSnapshot, FetchSnapshotRequest, FetchSnapshotResponse),
        (DescribeCluster, DescribeClusterRequest, DescribeClusterResponse),
        (DescribeProducers, DescribeProducersRequest, DescribeProducersResponse),
        (BrokerRegistration, BrokerRegistrationRequest, BrokerRegistrationResponse),
        (BrokerHeartbeat, BrokerHeartbeatRequest, BrokerHeartbeatResponse),
        (UnregisterBroker, UnregisterBrokerRequest, UnregisterBrokerResponse),
        (DescribeTransactions, DescribeTransactionsRequest, DescribeTransactionsResponse),
        (ListTransactions, ListTransactionsRequest, ListTransactionsResponse),
        (AllocateProducerIds, AllocateProducerIdsRequest, AllocateProducerIdsResponse),
        (ConsumerGroupHeartbeat, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse),
        (ConsumerGroupDescribe, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse),
        (ControllerRegistration, ControllerRegistrationRequest, ControllerRegistrationResponse),
        (GetTelemetrySubscriptions, GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse),
        (PushTelemetry, PushTelemetryRequest, PushTelemetryResponse),
        (AssignReplicasToDirs, AssignReplicasToDirsRequest, AssignReplicasToDirsResponse),
        (ListConfigResources, ListConfigResourcesRequest, ListConfigResourcesResponse),
        (DescribeTopicPartitions, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse),
        (ShareGroupHeartbeat, ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse),
        (ShareGroupDescribe, ShareGroupDescribeRequest, ShareGroupDescribeResponse),
        (ShareFetch, ShareFetchRequest, ShareFetchResponse),
        (ShareAcknowledge, ShareAcknowledgeRequest, ShareAcknowledgeResponse),
        (AddRaftVoter, AddRaftVoterRequest, AddRaftVoterResponse),
        (RemoveRaftVoter, RemoveRaftVoterRequest, RemoveRaftVoterResponse),
        (UpdateRaftVoter, UpdateRaftVoterRequest, UpdateRaftVoterResponse),
        (InitializeShareGroupState, InitializeShareGroupStateRequest, InitializeShareGroupStateResponse),
        (ReadShareGroupState, ReadShareGroupStateRequest, ReadShareGroupStateResponse),
        (WriteShareGroupState, WriteShareGroupStateRequest, WriteShareGroupStateResponse),
        (DeleteShareGroupState, DeleteShareGroupStateRequest, DeleteShareGroupStateResponse),
        (ReadShareGroupStateSummary, ReadShareGroupStateSummaryRequest, ReadShareGroupStateSummaryResponse),
        (DescribeShareGroupOffsets, DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse),
        (AlterShareGroupOffsets, AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse),
        (DeleteShareGroupOffsets, DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse)
}

/// The regression from DESIGN.md: MetadataRequest v0 from `3f ff ff ff` must be an error.
#[test]
fn metadata_v0_huge_array_count_is_an_error() {
    let mut b = Bytes::from_static(&[0x3f, 0xff, 0xff, 0xff]);
    let err = MetadataRequest::decode(&mut b, 0).unwrap_err();
    assert!(err.to_string().contains("exceeds the remaining"), "{err:#}");
    let mut s: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(MetadataRequest::decode(&mut s, 12).is_err());
    assert_eq!(BIG_ALLOCS.load(Ordering::SeqCst), 0);
}

#[test]
fn every_request_and_response_version_survives_hostile_input() {
    let mut rng = Rng(0x5eed_0000_0000_0001);
    let mut failures = Failures::default();
    let mut keys = 0;
    let mut versions = 0;
    for key in ApiKey::iter() {
        keys += 1;
        let range = key.valid_versions();
        assert!(range.min <= range.max, "{key:?}");
        for version in range.min..=range.max {
            versions += 1;
            assert!(
                fuzz_api(key, version, &mut rng, &mut failures),
                "no type for {key:?}"
            );
        }
    }
    assert_eq!(
        keys, 87,
        "ApiKey::iter() no longer yields the 87 keys of 0.18.0"
    );
    eprintln!(
        "fuzzed {keys} api keys, {versions} request versions, {} decode cases",
        failures.cases
    );
    failures.assert_none("messages");
}

// ---------------------------------------------------------------------------------------------
// Request header
// ---------------------------------------------------------------------------------------------

#[test]
fn request_header_survives_hostile_input() {
    let mut rng = Rng(0x5eed_0000_0000_0002);
    let mut failures = Failures::default();
    for key in ApiKey::iter() {
        let range = key.valid_versions();
        for version in range.min..=range.max {
            let header = RequestHeader::default()
                .with_request_api_key(key as i16)
                .with_request_api_version(version)
                .with_correlation_id(7)
                .with_client_id(Some(StrBytes::from_static_str("shardlog-test")));
            let mut enc = BytesMut::new();
            encode_request_header_into_buffer(&mut enc, &header).unwrap();
            let valid = enc.to_vec();
            let decoded = decode_request_header_from_buffer(&mut Bytes::from(valid.clone()))
                .unwrap_or_else(|e| panic!("{key:?} v{version}: {e:#}"));
            assert_eq!(decoded, header);
            for input in hostile_inputs(&valid, &mut rng, 50) {
                failures.check(
                    || format!("{key:?} v{version} header decode of {}", hex(&input)),
                    || {
                        let _ = decode_request_header_from_buffer(&mut Bytes::from(input.clone()));
                        let _ = decode_request_header_from_buffer(&mut BytesMut::from(&input[..]));
                        let mut s: &[u8] = &input;
                        let _ = decode_request_header_from_buffer(&mut s);
                        let mut c = std::io::Cursor::new(input.clone());
                        let _ = decode_request_header_from_buffer(&mut c);
                        for hv in 0..=2 {
                            let _ = RequestHeader::decode(&mut Bytes::from(input.clone()), hv);
                        }
                    },
                );
            }
        }
    }
    // Fewer than four bytes used to panic in `Buf::get_i16`.
    for n in 0..4 {
        let input = vec![0u8; n];
        failures.check(
            || format!("short header {n}"),
            || {
                assert!(
                    decode_request_header_from_buffer(&mut Bytes::from(input.clone())).is_err()
                );
                let mut s: &[u8] = &input;
                assert!(decode_request_header_from_buffer(&mut s).is_err());
            },
        );
    }
    for _ in 0..20_000 {
        let len = rng.below(64);
        let input = rng.bytes(len);
        failures.check(
            || format!("random header decode of {}", hex(&input)),
            || {
                let _ = decode_request_header_from_buffer(&mut Bytes::from(input.clone()));
            },
        );
    }
    failures.assert_none("request header");
}

// ---------------------------------------------------------------------------------------------
// Record batches
// ---------------------------------------------------------------------------------------------

/// Offsets inside a v2 record batch.
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const RECORD_COUNT_OFFSET: usize = 57;
const RECORDS_OFFSET: usize = 61;

/// Recompute the CRC of the (single) batch in `b` so that mutated batches get past the CRC check
/// and exercise record decoding and decompression.
fn fix_crc(b: &mut [u8]) {
    if b.len() < RECORDS_OFFSET {
        return;
    }
    let len = i32::from_be_bytes(b[8..12].try_into().unwrap());
    let end = (12 + len.max(0) as usize).min(b.len());
    if end < ATTRIBUTES_OFFSET {
        return;
    }
    let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..end]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// A v2 batch header (61 bytes) with a correct length and CRC around `payload`.
fn raw_batch(compression: i16, record_count: i32, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&((RECORDS_OFFSET - 12 + payload.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc (fixed below)
    b.extend_from_slice(&compression.to_be_bytes()); // attributes
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&0i64.to_be_bytes()); // first timestamp
    b.extend_from_slice(&0i64.to_be_bytes()); // max timestamp
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&record_count.to_be_bytes());
    assert_eq!(b.len(), RECORDS_OFFSET);
    b.extend_from_slice(payload);
    fix_crc(&mut b);
    b
}

fn sample_records() -> Vec<Record> {
    (0..5)
        .map(|i| {
            let mut headers = IndexMap::new();
            headers.insert(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"hv")),
            );
            headers.insert(StrBytes::from_static_str("n"), None);
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: i as i32,
                timestamp: 1_000 + i,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(vec![b'v'; 100])),
                headers,
            }
        })
        .collect()
}

const COMPRESSIONS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn decode_all_checked(failures: &mut Failures, label: &str, input: Vec<u8>) {
    failures.check(
        || format!("{label}: decode_all of {}", hex(&input)),
        || {
            let _ = RecordBatchDecoder::decode_all(&mut Bytes::from(input.clone()));
            let _ = RecordBatchDecoder::decode_batch_info(&mut Bytes::from(input.clone()));
            let mut s: &[u8] = &input;
            let _ = RecordBatchDecoder::decode_all(&mut s);
        },
    );
}

#[test]
fn record_batches_survive_hostile_input() {
    let mut rng = Rng(0x5eed_0000_0000_0003);
    let mut failures = Failures::default();

    // Random bytes and hostile patterns (mostly stopped by the length / CRC checks).
    for input in hostile_inputs(&[], &mut rng, 5000) {
        decode_all_checked(&mut failures, "random", input);
    }

    for compression in COMPRESSIONS {
        let mut enc = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut enc, &sample_records(), &options).unwrap();
        let valid = enc.to_vec();
        let decoded = RecordBatchDecoder::decode_all(&mut Bytes::from(valid.clone())).unwrap();
        assert_eq!(decoded.len(), 1);
        assert_eq!(decoded[0].records, sample_records(), "{compression:?}");

        let label = format!("{compression:?}");
        // Every truncation.
        for n in 0..valid.len() {
            decode_all_checked(&mut failures, &label, valid[..n].to_vec());
        }
        // Hostile lengths written at every offset past the header, CRC fixed up so that the
        // record / decompression code actually sees them.
        for p in HOSTILE_PATTERNS {
            for off in RECORDS_OFFSET..valid.len() {
                let mut v = valid.clone();
                for (i, b) in p.iter().enumerate() {
                    if off + i < v.len() {
                        v[off + i] = *b;
                    }
                }
                fix_crc(&mut v);
                decode_all_checked(&mut failures, &label, v);
            }
        }
        // Random mutations with the CRC fixed up.
        for _ in 0..3000 {
            let mut v = valid.clone();
            for _ in 0..1 + rng.below(4) {
                let i = ATTRIBUTES_OFFSET + rng.below(v.len() - ATTRIBUTES_OFFSET);
                v[i] = rng.next() as u8;
            }
            fix_crc(&mut v);
            decode_all_checked(&mut failures, &label, v);
        }
        // Huge record counts over a valid payload.
        for count in [i32::MAX, 0x3fff_ffff, 1 << 20, 6] {
            let mut v = valid.clone();
            v[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4].copy_from_slice(&count.to_be_bytes());
            fix_crc(&mut v);
            let res = RecordBatchDecoder::decode_all(&mut Bytes::from(v.clone()));
            assert!(res.is_err(), "{label}: record count {count} accepted");
            decode_all_checked(&mut failures, &label, v);
        }
        // Random compressed payloads behind a valid header.
        for _ in 0..500 {
            let len = rng.below(256);
            let payload = rng.bytes(len);
            let count = rng.next() as i32 & 0x7fff_ffff;
            decode_all_checked(
                &mut failures,
                &label,
                raw_batch(compression as i16, count, &payload),
            );
        }
    }

    // Record-level hostile lengths in an uncompressed batch: record size, key/value length,
    // header count and header key/value length (varints), with correct CRC.
    let hostile_varints: &[&[u8]] = &[
        &[0xfe, 0xff, 0xff, 0xff, 0x0f], // i32::MAX zigzag
        &[0xfe, 0xff, 0xff, 0x7f],       // 0x7ffffff
        &[0x01],                         // -1
        &[0x03],                         // -2
    ];
    for v in hostile_varints {
        // record with attributes, ts delta 0, offset delta 0, key len hostile
        let mut rec = vec![0u8, 0, 0];
        rec.extend_from_slice(v);
        let mut payload = Vec::new();
        payload.push((rec.len() as u8) << 1); // record size varint
        payload.extend_from_slice(&rec);
        decode_all_checked(&mut failures, "key len", raw_batch(0, 1, &payload));
        // key null, value null, header count hostile
        let mut rec = vec![0u8, 0, 0, 1, 1];
        rec.extend_from_slice(v);
        let mut payload = vec![(rec.len() as u8) << 1];
        payload.extend_from_slice(&rec);
        let res = RecordBatchDecoder::decode_all(&mut Bytes::from(raw_batch(0, 1, &payload)));
        if v.len() > 1 {
            assert!(res.is_err(), "header count accepted");
        }
        decode_all_checked(&mut failures, "header count", raw_batch(0, 1, &payload));
        // record size hostile
        let mut payload = v.to_vec();
        payload.extend_from_slice(&[0; 16]);
        decode_all_checked(&mut failures, "record size", raw_batch(0, 1, &payload));
        // timestamp delta = i64::MAX on top of a first timestamp (debug overflow)
        let mut rec = vec![0u8];
        rec.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        rec.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x0f, 1, 1, 0]);
        let mut payload = vec![(rec.len() as u8) << 1];
        payload.extend_from_slice(&rec);
        let mut b = raw_batch(0, 1, &payload);
        b[27..35].copy_from_slice(&i64::MAX.to_be_bytes()); // first timestamp
        b[..8].copy_from_slice(&i64::MAX.to_be_bytes()); // base offset
        fix_crc(&mut b);
        decode_all_checked(&mut failures, "timestamp overflow", b);
    }

    failures.assert_none("record batches");
}

/// Declared uncompressed lengths far beyond what the input can hold are rejected before any
/// buffer is allocated, and stream decompressors stop at `max_decompressed_size()`.
#[test]
fn decompression_is_bounded() {
    let mut failures = Failures::default();
    // Raw snappy claiming ~4 GiB.
    let bomb = raw_batch(2, 1, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]);
    failures.check(
        || "raw snappy 4 GiB".into(),
        || assert!(RecordBatchDecoder::decode_all(&mut Bytes::from(bomb.clone())).is_err()),
    );
    // Xerial-framed snappy block claiming ~4 GiB.
    let mut xerial = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
    xerial.extend_from_slice(&6u32.to_be_bytes());
    xerial.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]);
    let bomb = raw_batch(2, 1, &xerial);
    failures.check(
        || "xerial snappy 4 GiB".into(),
        || assert!(RecordBatchDecoder::decode_all(&mut Bytes::from(bomb.clone())).is_err()),
    );

    // zstd / gzip / lz4 of 8 MiB of zeros with the limit lowered to 1 MiB. (The limit is
    // process-wide; the other tests in this binary decompress far less than 1 MiB.)
    kafka_protocol::compression::set_max_decompressed_size(1 << 20);
    let zeros = vec![0u8; 8 << 20];
    let zstd_bomb = zstd::bulk::compress(&zeros, 1).unwrap();
    let gzip_bomb = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&zeros).unwrap();
        e.finish().unwrap()
    };
    let lz4_bomb = {
        use std::io::Write;
        let mut e = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        e.write_all(&zeros).unwrap();
        let (out, res) = e.finish();
        res.unwrap();
        out
    };
    drop(zeros);
    for (name, attr, bomb) in [
        ("zstd", 4i16, zstd_bomb),
        ("gzip", 1, gzip_bomb),
        ("lz4", 3, lz4_bomb),
    ] {
        assert!(bomb.len() < 1 << 20, "{name} bomb is {} bytes", bomb.len());
        let batch = raw_batch(attr, 1, &bomb);
        failures.check(
            || format!("{name} 8 MiB bomb"),
            || {
                let err =
                    RecordBatchDecoder::decode_all(&mut Bytes::from(batch.clone())).unwrap_err();
                let msg = format!("{err:#}");
                assert!(msg.contains("exceeds the limit"), "{name}: {msg}");
            },
        );
    }
    kafka_protocol::compression::set_max_decompressed_size(
        kafka_protocol::compression::DEFAULT_MAX_DECOMPRESSED_SIZE,
    );
    failures.assert_none("decompression");
}
