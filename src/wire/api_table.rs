//! Which APIs and versions a broker answers, and the ApiVersions response built from it.
//!
//! The list itself is declared once, next to the handlers (`server::apis`, which also generates
//! the dispatch from it) and handed to these functions: the offered range of an API is the
//! intersection of what its handler implements and what the `kafka-protocol` crate can encode.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::VersionRange;

/// One API a broker answers and the versions its handler implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferedApi {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

/// The versions of `api` in `offered` that the codec can also encode; `None` means the API is
/// not offered.
pub fn supported_versions(offered: &[OfferedApi], api: ApiKey) -> Option<VersionRange> {
    let o = offered.iter().find(|o| o.key == api)?;
    let ours = VersionRange {
        min: o.min,
        max: o.max,
    };
    let r = ours.intersect(&api.valid_versions());
    (!r.is_empty()).then_some(r)
}

/// A small table for the tests of this layer (the broker's is `server::apis::OFFERED`).
#[cfg(test)]
pub(crate) fn test_table() -> Vec<OfferedApi> {
    [
        (ApiKey::ApiVersions, 0, 4),
        (ApiKey::Produce, 3, 12),
        (ApiKey::Metadata, 0, 99),
    ]
    .into_iter()
    .map(|(key, min, max)| OfferedApi { key, min, max })
    .collect()
}

/// The ApiVersions answer. Only default-valued tagged fields are left out, because librdkafka
/// 2.0.2 (Debian's kcat) mis-skips top-level tagged fields in v3 responses.
pub fn api_versions_response(offered: &[OfferedApi], error_code: i16) -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.error_code = error_code;
    r.api_keys = ApiKey::iter()
        .filter_map(|k| {
            supported_versions(offered, k).map(|v| {
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
    fn offered_ranges_are_cut_to_the_codec_and_encodable() {
        let t = test_table();
        let r = api_versions_response(&t, 0);
        assert_eq!(r.api_keys.len(), 3);
        let md = supported_versions(&t, ApiKey::Metadata).unwrap();
        assert_eq!(md.max, ApiKey::Metadata.valid_versions().max);
        assert_eq!(supported_versions(&t, ApiKey::Fetch), None);
        for v in 0..=4 {
            let mut buf = bytes::BytesMut::new();
            r.encode(&mut buf, v).unwrap();
        }
    }
}
