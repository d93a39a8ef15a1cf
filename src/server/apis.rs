//! Every Kafka API this broker answers, declared once: its versions and its handler. The macro
//! below turns the one list into both the table ApiVersions and the frame parser use
//! ([`OFFERED`]) and the dispatch (`route`), so the two cannot drift apart.
//!
//! A version range is what the handler implements; the broker offers its intersection with what
//! the kafka-protocol codec can encode (`wire::api_table`). Caps below the codec's maximum say
//! why.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;

use super::dispatch::{decode, encode, respond, respond_parts, Outcome};
use super::handlers;
use super::handlers::produce::ProduceAnswer;
use super::session::{ClientSoftware, RequestContext};
use crate::wire::{api_versions_response, OfferedApi, RequestFrame};

macro_rules! apis {
    ($( $key:ident $min:literal ..= $max:literal => |$c:ident, $r:ident : $ty:ty| $body:expr ),* $(,)?) => {
        /// The APIs this broker answers and the versions their handlers implement.
        pub const OFFERED: &[OfferedApi] = &[
            $( OfferedApi { key: ApiKey::$key, min: $min, max: $max } ),*
        ];

        /// Decodes the body of `f` and runs its API's handler. `Err` carries the outcome of a
        /// body that does not decode (the connection is closed, as Kafka does).
        pub(super) async fn route(
            ctx: &RequestContext,
            f: &mut RequestFrame,
        ) -> Result<Outcome, Outcome> {
            Ok(match f.api_key {
                $( ApiKey::$key => {
                    let $r: $ty = decode(f)?;
                    let $c = ctx;
                    $body
                } )*
                other => Outcome::Close(format!("{other:?} is not supported")),
            })
        }
    };
}

apis! {
    ApiVersions 0..=4 => |c, r: ApiVersionsRequest| {
        remember_client_software(c, &r);
        respond(c, &api_versions_response(OFFERED, 0))
    },
    Metadata 0..=12 => |c, r: MetadataRequest| {
        respond(c, &handlers::metadata::handle(r, c.api_version).await)
    },
    // Produce v13 addresses topics by id (KIP-516); clients fall back to v12 with names.
    Produce 3..=12 => |c, r: ProduceRequest| match handlers::produce::handle(r, c.api_version).await {
        ProduceAnswer::Now(resp) => respond(c, &resp),
        ProduceAnswer::Nothing => Outcome::NoResponse,
        ProduceAnswer::AfterSync(later) => {
            let (key, version, correlation_id) = (c.api_key, c.api_version, c.correlation_id);
            Outcome::Later(Box::pin(async move {
                encode(key, version, correlation_id, &later.await)
            }))
        }
    },
    Fetch 4..=17 => |c, r: FetchRequest| {
        let (resp, buf) = handlers::fetch::handle(r, c.api_version).await;
        respond_parts(c, &resp, buf)
    },
    ListOffsets 1..=10 => |c, r: ListOffsetsRequest| {
        respond(c, &handlers::list_offsets::handle(r, c.api_version).await)
    },
    OffsetForLeaderEpoch 2..=4 => |c, r: OffsetForLeaderEpochRequest| {
        respond(c, &handlers::offset_for_leader_epoch::handle(r).await)
    },
    CreateTopics 2..=7 => |c, r: CreateTopicsRequest| {
        respond(c, &handlers::topics::create_topics(r, c.api_version).await)
    },
    DeleteTopics 1..=6 => |c, r: DeleteTopicsRequest| {
        respond(c, &handlers::topics::delete_topics(r, c.api_version).await)
    },
    CreatePartitions 0..=3 => |c, r: CreatePartitionsRequest| {
        respond(c, &handlers::topics::create_partitions(r).await)
    },
    DescribeConfigs 1..=4 => |c, r: DescribeConfigsRequest| {
        respond(c, &handlers::describe_configs::handle(r))
    },
    DescribeCluster 0..=1 => |c, r: DescribeClusterRequest| {
        respond(c, &handlers::cluster::describe_cluster(r))
    },
    DeleteRecords 0..=2 => |c, r: DeleteRecordsRequest| {
        respond(c, &handlers::delete_records::handle(r).await)
    },
    DescribeQuorum 0..=2 => |c, r: DescribeQuorumRequest| {
        respond(c, &handlers::describe_quorum::handle(r, c.api_version, &c.client_id).await)
    },
    AlterConfigs 0..=2 => |c, r: AlterConfigsRequest| {
        respond(c, &handlers::alter_configs::legacy(r).await)
    },
    IncrementalAlterConfigs 0..=1 => |c, r: IncrementalAlterConfigsRequest| {
        respond(c, &handlers::alter_configs::incremental(r).await)
    },
    SaslHandshake 0..=1 => |c, _r: SaslHandshakeRequest| {
        // SASL is not configured on this listener: refuse every mechanism, list none.
        let mut resp = SaslHandshakeResponse::default();
        resp.error_code = ResponseError::UnsupportedSaslMechanism.code();
        respond(c, &resp)
    },
    InitProducerId 0..=5 => |c, r: InitProducerIdRequest| {
        respond(c, &handlers::init_producer_id::handle(r).await)
    },
    // Consumer groups (classic protocol).
    FindCoordinator 0..=6 => |c, r: FindCoordinatorRequest| {
        respond(c, &handlers::groups::find_coordinator(r, c.api_version))
    },
    JoinGroup 0..=9 => |c, r: JoinGroupRequest| {
        respond(c, &handlers::groups::join_group(r, c.api_version, c.client_id.clone()).await)
    },
    SyncGroup 0..=5 => |c, r: SyncGroupRequest| {
        respond(c, &handlers::groups::sync_group(r, c.api_version).await)
    },
    Heartbeat 0..=4 => |c, r: HeartbeatRequest| {
        respond(c, &handlers::groups::heartbeat(r).await)
    },
    LeaveGroup 0..=5 => |c, r: LeaveGroupRequest| {
        respond(c, &handlers::groups::leave_group(r, c.api_version).await)
    },
    // OffsetCommit / OffsetFetch v10 address topics by id; the codec stops at 9.
    OffsetCommit 2..=9 => |c, r: OffsetCommitRequest| {
        respond(c, &handlers::groups::offset_commit(r, c.api_version).await)
    },
    OffsetFetch 1..=9 => |c, r: OffsetFetchRequest| {
        respond(c, &handlers::groups::offset_fetch(r, c.api_version).await)
    },
    ListGroups 0..=5 => |c, r: ListGroupsRequest| {
        respond(c, &handlers::groups::list_groups(r, c.api_version).await)
    },
    DescribeGroups 0..=6 => |c, r: DescribeGroupsRequest| {
        respond(c, &handlers::groups::describe_groups(r, c.api_version).await)
    },
    DeleteGroups 0..=2 => |c, r: DeleteGroupsRequest| {
        respond(c, &handlers::groups::delete_groups(r).await)
    },
    OffsetDelete 0..=0 => |c, r: OffsetDeleteRequest| {
        respond(c, &handlers::groups::offset_delete(r).await)
    },
}

/// KIP-511: ApiVersions v3+ names the client's software; the session keeps it (for logs,
/// metrics and, later, quotas). Kafka checks the strings' form and answers INVALID_REQUEST for
/// a bad one; this broker does not check them yet and answers as before.
fn remember_client_software(ctx: &RequestContext, r: &ApiVersionsRequest) {
    if ctx.api_version >= 3 {
        ctx.session.set_client_software(ClientSoftware {
            name: r.client_software_name.to_string(),
            version: r.client_software_version.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::supported_versions;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn every_offered_range_fits_the_codec_and_encodes() {
        assert_eq!(OFFERED.len(), 28);
        for o in OFFERED {
            let v = supported_versions(OFFERED, o.key).expect("offered");
            let c = o.key.valid_versions();
            assert!(v.min >= c.min && v.max <= c.max, "{:?}", o.key);
            assert_eq!(
                (v.min, v.max),
                (o.min, o.max),
                "{:?} capped by the codec",
                o.key
            );
        }
        let r = api_versions_response(OFFERED, 0);
        assert_eq!(r.api_keys.len(), OFFERED.len());
        for v in 0..=4 {
            let mut buf = bytes::BytesMut::new();
            r.encode(&mut buf, v).unwrap();
        }
    }

    #[test]
    fn api_versions_v3_records_the_client_software_in_the_session() {
        use crate::server::session::Session;
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::ApiVersions as i16)
            .with_request_api_version(3)
            .with_correlation_id(9)
            .with_client_id(Some(StrBytes::from_static_str("app-1")));
        let body = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("librdkafka"))
            .with_client_software_version(StrBytes::from_static_str("2.3.0"));
        let mut buf = bytes::BytesMut::new();
        header.encode(&mut buf, 2).unwrap();
        body.encode(&mut buf, 3).unwrap();
        let mut frame = crate::wire::parse_request(buf.freeze(), OFFERED).unwrap();
        let session = Session::plaintext(None);
        let ctx = RequestContext::new(&frame, &session);
        assert_eq!((ctx.client_id.as_str(), ctx.correlation_id), ("app-1", 9));
        let out = crate::runtime::file::run_local(route(&ctx, &mut frame));
        assert!(matches!(out, Ok(Outcome::Respond(_))));
        assert_eq!(
            session.client_software(),
            Some(ClientSoftware {
                name: "librdkafka".into(),
                version: "2.3.0".into()
            })
        );
        assert_eq!(session.principal, crate::server::session::ANONYMOUS);
    }

    #[test]
    fn every_api_is_declared_once() {
        let keys: std::collections::HashSet<i16> = OFFERED.iter().map(|o| o.key as i16).collect();
        assert_eq!(keys.len(), OFFERED.len());
    }
}
