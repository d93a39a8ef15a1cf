//! Which APIs and versions this broker answers, and the ApiVersions response built from it.
//!
//! Each range is the intersection of what the `kafka-protocol` crate can encode and what the
//! handlers implement. Caps below the crate's maximum say why.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::VersionRange;

/// The versions we implement per API; `None` means the API is not offered.
pub fn supported_versions(api: ApiKey) -> Option<VersionRange> {
    let (min, max) = match api {
        // Produce v13 addresses topics by id (KIP-516); clients fall back to v12 with names.
        ApiKey::Produce => (3, 12),
        ApiKey::Fetch => (4, 17),
        ApiKey::ListOffsets => (1, 10),
        ApiKey::Metadata => (0, 12),
        ApiKey::ApiVersions => (0, 4),
        ApiKey::CreateTopics => (2, 7),
        ApiKey::DeleteTopics => (1, 6),
        ApiKey::CreatePartitions => (0, 3),
        ApiKey::DescribeConfigs => (1, 4),
        ApiKey::DescribeCluster => (0, 1),
        ApiKey::AlterConfigs => (0, 2),
        ApiKey::IncrementalAlterConfigs => (0, 1),
        ApiKey::SaslHandshake => (0, 1),
        ApiKey::InitProducerId => (0, 5),
        // Consumer groups (classic protocol). OffsetCommit/OffsetFetch v10 address topics by id;
        // the codec stops at 9.
        ApiKey::FindCoordinator => (0, 6),
        ApiKey::JoinGroup => (0, 9),
        ApiKey::SyncGroup => (0, 5),
        ApiKey::Heartbeat => (0, 4),
        ApiKey::LeaveGroup => (0, 5),
        ApiKey::OffsetCommit => (2, 9),
        ApiKey::OffsetFetch => (1, 9),
        ApiKey::ListGroups => (0, 5),
        ApiKey::DescribeGroups => (0, 6),
        ApiKey::DeleteGroups => (0, 2),
        ApiKey::OffsetDelete => (0, 0),
        _ => return None,
    };
    let ours = VersionRange { min, max };
    let crate_range = api.valid_versions();
    let r = ours.intersect(&crate_range);
    (!r.is_empty()).then_some(r)
}

/// The ApiVersions answer. Only default-valued tagged fields are left out, because librdkafka
/// 2.0.2 (Debian's kcat) mis-skips top-level tagged fields in v3 responses.
pub fn api_versions_response(error_code: i16) -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.error_code = error_code;
    r.api_keys = ApiKey::iter()
        .filter_map(|k| {
            supported_versions(k).map(|v| {
                let mut a = ApiVersion::default();
                a.api_key = k as i16;
                a.min_version = v.min;
                a.max_version = v.max;
                a
            })
        })
        .collect();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn every_offered_range_is_encodable() {
        let r = api_versions_response(0);
        assert!(r.api_keys.len() >= 11);
        for v in 0..=4 {
            let mut buf = bytes::BytesMut::new();
            r.encode(&mut buf, v).unwrap();
        }
    }

    #[test]
    fn ranges_fit_the_codec() {
        for k in ApiKey::iter() {
            if let Some(v) = supported_versions(k) {
                let c = k.valid_versions();
                assert!(v.min >= c.min && v.max <= c.max, "{k:?}");
            }
        }
    }
}
