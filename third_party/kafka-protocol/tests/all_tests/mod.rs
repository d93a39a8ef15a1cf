mod api_key;
#[cfg(feature = "broker")]
mod api_versions;
// SHARDLOG PATCH: needs Docker + the removed `testcontainers` dev-dependency.
// #[cfg(feature = "client")]
// mod common;
mod fetch_response;
// SHARDLOG PATCH: needs Docker + the removed `testcontainers` dev-dependency.
// #[cfg(feature = "client")]
// mod integration_tests;
// SHARDLOG PATCH: needs Docker + the removed `testcontainers` dev-dependency.
// #[cfg(feature = "client")]
// mod produce_fetch;
mod request_header;
// SHARDLOG PATCH: hostile-input decoding tests.
mod shardlog_malformed_input;
