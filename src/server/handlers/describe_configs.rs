//! DescribeConfigs for topics (their effective settings) and the broker (its settings).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::str_bytes;
use crate::config::{Kind, Setting, Source, BROKER_SETTINGS, TOPIC_SETTINGS};
use crate::shard;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
// Kafka's ConfigSource codes.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

/// Kafka's ConfigType codes (DescribeConfigs v3+).
fn config_type(kind: Kind) -> i8 {
    match kind {
        Kind::Bool => 1,
        Kind::Str | Kind::Choice(_) => 2,
        Kind::Int => 3,
        Kind::Long => 5,
    }
}

pub fn handle(req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let shard = shard::current();
    let mut resp = DescribeConfigsResponse::default();
    for res in req.resources {
        let wanted = |name: &str| {
            res.configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
        };
        let mut out = DescribeConfigsResult::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name.clone();
        let entry = |s: &Setting, value: &str, source: i8, read_only: bool| {
            let mut c = DescribeConfigsResourceResult::default();
            c.name = str_bytes(s.name);
            c.value = Some(str_bytes(value));
            c.config_source = source;
            c.read_only = read_only;
            c.config_type = config_type(s.kind);
            if req.include_documentation {
                c.documentation = Some(str_bytes(s.doc));
            }
            c
        };
        match res.resource_type {
            RESOURCE_TOPIC => match shard.with_image(|i| {
                i.topic(res.resource_name.as_str())
                    .map(|t| t.configs.clone())
            }) {
                Some(overrides) => {
                    let defaults = shard.config.topic_defaults();
                    for (s, broker_key) in TOPIC_SETTINGS.iter().filter(|(s, _)| wanted(s.name)) {
                        let (value, source) = match overrides.get(s.name) {
                            Some(v) => (v.clone(), DYNAMIC_TOPIC_CONFIG),
                            None => {
                                let src = match shard.config.source(broker_key) {
                                    Source::Default => DEFAULT_CONFIG,
                                    _ => STATIC_BROKER_CONFIG,
                                };
                                (defaults.get(s.name).cloned().unwrap_or_default(), src)
                            }
                        };
                        out.configs.push(entry(s, &value, source, false));
                    }
                }
                None => {
                    out.error_code = ResponseError::UnknownTopicOrPartition.code();
                    out.error_message = Some(str_bytes(format!(
                        "Topic '{}' does not exist.",
                        res.resource_name.as_str()
                    )));
                }
            },
            RESOURCE_BROKER => {
                let me = shard.config.node_id().to_string();
                if res.resource_name.as_str() != me && !res.resource_name.is_empty() {
                    out.error_code = ResponseError::InvalidRequest.code();
                    out.error_message = Some(str_bytes(format!(
                        "Unknown broker {}",
                        res.resource_name.as_str()
                    )));
                } else {
                    for s in BROKER_SETTINGS.iter().filter(|s| wanted(s.name)) {
                        let source = match shard.config.source(s.name) {
                            Source::Default => DEFAULT_CONFIG,
                            _ => STATIC_BROKER_CONFIG,
                        };
                        // Broker settings are static (set at start), hence read-only.
                        out.configs
                            .push(entry(s, shard.config.get(s.name), source, true));
                    }
                }
            }
            other => {
                out.error_code = ResponseError::InvalidRequest.code();
                out.error_message = Some(str_bytes(format!("Unsupported resource type {other}")));
            }
        }
        resp.results.push(out);
    }
    resp
}
