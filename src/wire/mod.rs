//! The Kafka wire format: framing, request headers, the table of supported API versions, and
//! response encoding. Message bodies are encoded and decoded by the `kafka-protocol` crate (a
//! copy patched to bound every length by the bytes remaining, see third_party/kafka-protocol).
//! Nothing here knows about storage or shards.

pub mod api_table;
pub mod client;
pub mod frame;
pub mod response;

pub use api_table::{api_versions_response, supported_versions, OfferedApi};
pub use frame::{encode_response, encode_response_parts, parse_request, FrameError, RequestFrame};
pub use response::{Part, PartsBuf, Records, Response};
