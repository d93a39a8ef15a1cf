//! IncrementalAlterConfigs (API 44) and AlterConfigs (API 33).
//!
//! TOPIC resources are changed at run time: the change is validated on shard 0 exactly as
//! CreateTopics configs are, persisted in the metadata log as a `SetTopicConfigs` record and
//! applied on every shard, whose open partition logs take the new settings for their next
//! append / roll / retention run. DescribeConfigs then reports the values as
//! DYNAMIC_TOPIC_CONFIG.
//!
//! BROKER resources are refused: every broker setting is read at start (file, environment,
//! `--set`). Kafka answers a change to a non-dynamic broker setting with INVALID_REQUEST and
//! "Cannot update these configs dynamically: ..." (its `DynamicBrokerConfig` throws a
//! ConfigException, which the admin manager turns into InvalidRequestException); so do we. A
//! BROKER resource with no configs is a no-op success, as in Kafka.

use std::collections::HashSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;

use super::str_bytes;
use crate::controller::{self, ConfigChange};
use crate::shard::current;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;

/// The answer for one resource: (error code, message).
type Answer = (i16, Option<String>);

fn refuse(e: ResponseError, m: impl Into<String>) -> Answer {
    (e.code(), Some(m.into()))
}

async fn alter_one(
    resource_type: i8,
    name: String,
    keys: Vec<String>,
    change: ConfigChange,
    validate_only: bool,
) -> Answer {
    match resource_type {
        RESOURCE_TOPIC => {
            let r = controller::alter_topic_configs(name, change, validate_only).await;
            match r {
                Ok(Ok(())) => (0, None),
                Ok(Err((e, m))) => refuse(e, m),
                Err(e) => refuse(
                    ResponseError::UnknownServerError,
                    format!("metadata owner unreachable: {e}"),
                ),
            }
        }
        RESOURCE_BROKER => {
            let me = current().config.node_id().to_string();
            if !name.is_empty() && name != me {
                return refuse(
                    ResponseError::InvalidRequest,
                    format!("Unexpected broker id, expected {me} or empty string, but received {name}"),
                );
            }
            if keys.is_empty() {
                return (0, None);
            }
            refuse(
                ResponseError::InvalidRequest,
                format!(
                    "Invalid config value for resource ConfigResource(type=BROKER, name='{name}'): \
                     Cannot update these configs dynamically: Set({}) \
                     (shardlog broker settings are static: change the config file, environment or --set and restart)",
                    keys.join(", ")
                ),
            )
        }
        RESOURCE_BROKER_LOGGER => refuse(
            ResponseError::InvalidRequest,
            "Broker logger levels cannot be changed at run time (use RUST_LOG / --log-level at start).",
        ),
        other => refuse(
            ResponseError::InvalidRequest,
            format!("Unexpected resource type {other}"),
        ),
    }
}

/// (type, name) pairs named more than once in one request: Kafka answers each INVALID_REQUEST.
fn duplicates(resources: impl Iterator<Item = (i8, String)>) -> HashSet<(i8, String)> {
    let mut seen = HashSet::new();
    resources.filter(|r| !seen.insert(r.clone())).collect()
}

pub async fn incremental(req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    let dup = duplicates(
        req.resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.to_string())),
    );
    let mut resp = IncrementalAlterConfigsResponse::default();
    for r in req.resources {
        let name = r.resource_name.to_string();
        let (code, msg) = if dup.contains(&(r.resource_type, name.clone())) {
            refuse(
                ResponseError::InvalidRequest,
                format!("Error due to duplicate resource {name}"),
            )
        } else {
            let keys = r.configs.iter().map(|c| c.name.to_string()).collect();
            let ops = r
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.config_operation,
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect();
            alter_one(
                r.resource_type,
                name,
                keys,
                ConfigChange::Incremental(ops),
                req.validate_only,
            )
            .await
        };
        let mut out = AlterConfigsResourceResponse::default();
        out.error_code = code;
        out.error_message = msg.map(str_bytes);
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name;
        resp.responses.push(out);
    }
    resp
}

pub async fn legacy(req: AlterConfigsRequest) -> AlterConfigsResponse {
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    let dup = duplicates(
        req.resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.to_string())),
    );
    let mut resp = AlterConfigsResponse::default();
    for r in req.resources {
        let name = r.resource_name.to_string();
        let (code, msg) = if dup.contains(&(r.resource_type, name.clone())) {
            refuse(
                ResponseError::InvalidRequest,
                format!("Error due to duplicate resource {name}"),
            )
        } else {
            let keys = r.configs.iter().map(|c| c.name.to_string()).collect();
            let pairs = r
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect();
            alter_one(
                r.resource_type,
                name,
                keys,
                ConfigChange::Replace(pairs),
                req.validate_only,
            )
            .await
        };
        let mut out = AlterConfigsResourceResponse::default();
        out.error_code = code;
        out.error_message = msg.map(str_bytes);
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name;
        resp.responses.push(out);
    }
    resp
}
