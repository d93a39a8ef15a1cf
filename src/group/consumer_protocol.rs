//! Reading the "consumer" protocol's subscription metadata (ConsumerProtocolSubscription), which
//! the broker otherwise treats as opaque bytes. Only OffsetDelete needs it: Kafka refuses to
//! delete offsets of topics a live consumer group subscribes to.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;

/// The topics of a subscription, or `None` if the bytes do not parse. Versions above 3 are read
/// as version 3: the schema only ever appends fields.
pub fn subscribed_topics(metadata: &Bytes) -> Option<Vec<String>> {
    let mut buf = metadata.clone();
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16();
    if version < 0 {
        return None;
    }
    let sub = ConsumerProtocolSubscription::decode(&mut buf, version.min(3)).ok()?;
    Some(sub.topics.into_iter().map(|t| t.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    #[test]
    fn reads_topics_of_any_version() {
        let mut s = ConsumerProtocolSubscription::default();
        s.topics = vec![
            StrBytes::from_static_str("a"),
            StrBytes::from_static_str("b"),
        ];
        for v in 0..=3i16 {
            let mut b = BytesMut::new();
            b.put_i16(v);
            s.encode(&mut b, v).unwrap();
            assert_eq!(
                subscribed_topics(&b.freeze()),
                Some(vec!["a".into(), "b".into()])
            );
        }
        assert_eq!(subscribed_topics(&Bytes::from_static(&[0])), None);
        assert_eq!(
            subscribed_topics(&Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff])),
            None
        );
    }
}
