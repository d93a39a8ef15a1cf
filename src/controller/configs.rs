//! Topic configuration changes (AlterConfigs, IncrementalAlterConfigs), validated as CreateTopics
//! configs are.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use super::commit::{commit, controller_lock};
use crate::config::{validate_topic_configs, ConfigError};
use crate::metadata::MetadataRecord;
use crate::shard::current;

/// IncrementalAlterConfigs operation codes (Kafka's `AlterConfigOp.OpType`).
pub const OP_SET: i8 = 0;
pub const OP_DELETE: i8 = 1;
pub const OP_APPEND: i8 = 2;
pub const OP_SUBTRACT: i8 = 3;

/// Topic settings whose values are comma-separated lists (Kafka's `ConfigDef.Type.LIST`): the only
/// ones APPEND and SUBTRACT may change.
const LIST_SETTINGS: &[&str] = &["cleanup.policy"];

/// A change to one topic's configuration.
#[derive(Debug, Clone)]
pub enum ConfigChange {
    /// IncrementalAlterConfigs: `(key, operation, value)` applied to the current overrides.
    Incremental(Vec<(String, i8, Option<String>)>),
    /// AlterConfigs: the complete new set of overrides (keys not named return to the default).
    Replace(Vec<(String, Option<String>)>),
}

/// Why a config change was refused: Kafka's error and message.
pub type ConfigRefusal = (ResponseError, String);

/// The topic's new overrides after `change`, validated exactly as CreateTopics configs are.
/// `defaults` are the broker-level defaults (APPEND/SUBTRACT start from the effective value).
pub fn apply_config_change(
    current: &BTreeMap<String, String>,
    defaults: &BTreeMap<String, String>,
    change: &ConfigChange,
) -> Result<BTreeMap<String, String>, ConfigRefusal> {
    let invalid_request = |m: String| (ResponseError::InvalidRequest, m);
    let mut seen = std::collections::BTreeSet::new();
    let mut next: BTreeMap<String, Option<String>>;
    match change {
        ConfigChange::Replace(pairs) => {
            next = BTreeMap::new();
            for (key, value) in pairs {
                if !seen.insert(key.clone()) {
                    return Err(invalid_request("Error due to duplicate config keys".into()));
                }
                let Some(v) = value else {
                    return Err(invalid_request(format!(
                        "Null value not supported for topic configs: {key}"
                    )));
                };
                next.insert(key.clone(), Some(v.clone()));
            }
        }
        ConfigChange::Incremental(ops) => {
            next = current
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            for (key, op, value) in ops {
                if !seen.insert(key.clone()) {
                    return Err(invalid_request("Error due to duplicate config keys".into()));
                }
                match *op {
                    OP_SET => {
                        let Some(v) = value else {
                            return Err(invalid_request(format!(
                                "Null value not supported for : {key}"
                            )));
                        };
                        next.insert(key.clone(), Some(v.clone()));
                    }
                    // `None` still names the key, so an unknown key is refused below.
                    OP_DELETE => {
                        next.insert(key.clone(), None);
                    }
                    OP_APPEND | OP_SUBTRACT => {
                        let verb = if *op == OP_APPEND {
                            "append"
                        } else {
                            "subtract"
                        };
                        if !LIST_SETTINGS.contains(&key.as_str()) {
                            // Unknown keys are INVALID_CONFIG too (from validation), so check
                            // them first for the clearer message.
                            validate_topic_configs([(key.as_str(), None)])
                                .map_err(config_refusal)?;
                            return Err((
                                ResponseError::InvalidConfig,
                                format!("Config value {verb} is not allowed for config key: {key}"),
                            ));
                        }
                        let split = |s: &str| -> Vec<String> {
                            s.split(',')
                                .map(|x| x.trim().to_string())
                                .filter(|x| !x.is_empty())
                                .collect()
                        };
                        let old = next
                            .get(key)
                            .cloned()
                            .flatten()
                            .or_else(|| defaults.get(key).cloned())
                            .unwrap_or_default();
                        let mut parts = split(&old);
                        let given = split(value.as_deref().unwrap_or(""));
                        if *op == OP_APPEND {
                            for g in given {
                                if !parts.contains(&g) {
                                    parts.push(g);
                                }
                            }
                        } else {
                            parts.retain(|p| !given.contains(p));
                        }
                        next.insert(key.clone(), Some(parts.join(",")));
                    }
                    other => {
                        return Err(invalid_request(format!(
                            "Unknown alter config operation {other} for {key}"
                        )))
                    }
                }
            }
        }
    }
    validate_topic_configs(next.iter().map(|(k, v)| (k.as_str(), v.as_deref())))
        .map_err(config_refusal)
}

fn config_refusal(ConfigError { key, message }: ConfigError) -> ConfigRefusal {
    (
        ResponseError::InvalidConfig,
        format!("Invalid config {key}: {message}"),
    )
}

/// Settings of `__consumer_offsets` that no client may change: each could delete committed
/// offsets.
const OFFSETS_TOPIC_FIXED: &[&str] = &["retention.ms", "retention.bytes", "cleanup.policy"];

/// Changes a topic's configuration: validated on shard 0, persisted as a `SetTopicConfigs`
/// record, then applied on every shard (whose open logs take the new `LogConfig`).
pub async fn alter_topic_configs(
    name: String,
    change: ConfigChange,
    validate_only: bool,
) -> Result<(), ConfigRefusal> {
    let lock = controller_lock();
    let _serial = lock.lock().await;
    let shard = current();
    let Some(current_configs) = shard.with_image(|i| i.topic(&name).map(|t| t.configs.clone()))
    else {
        return Err((
            ResponseError::UnknownTopicOrPartition,
            format!("Topic '{name}' does not exist."),
        ));
    };
    let configs = apply_config_change(&current_configs, &shard.config.topic_defaults(), &change)?;
    if name == crate::group::OFFSETS_TOPIC {
        // Committed offsets live in __consumer_offsets until it is compacted (not yet
        // implemented): time or size retention on it would delete every group's offsets.
        for key in OFFSETS_TOPIC_FIXED {
            if configs.get(*key) != current_configs.get(*key) {
                return Err((
                    ResponseError::InvalidConfig,
                    format!(
                        "Invalid config {key}: {} keeps committed offsets until they expire \
                         (offsets.retention.minutes); changing {key} would delete them",
                        crate::group::OFFSETS_TOPIC
                    ),
                ));
            }
        }
    }
    if validate_only || configs == current_configs {
        return Ok(());
    }
    commit(MetadataRecord::SetTopicConfigs { name, configs })
        .await
        .map_err(|e| {
            (
                e.error(ResponseError::UnknownTopicOrPartition),
                e.to_string(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn op(key: &str, op: i8, value: Option<&str>) -> (String, i8, Option<String>) {
        (key.into(), op, value.map(str::to_string))
    }

    #[test]
    fn incremental_set_delete_append_subtract() {
        let defaults = crate::config::BrokerConfig::default().topic_defaults();
        let cur = map(&[("retention.ms", "1000"), ("segment.bytes", "4096")]);
        let next = apply_config_change(
            &cur,
            &defaults,
            &ConfigChange::Incremental(vec![
                op("retention.ms", OP_SET, Some("2000")),
                op("segment.bytes", OP_DELETE, None),
                op("flush.messages", OP_SET, Some(" 10 ")),
            ]),
        )
        .unwrap();
        assert_eq!(
            next,
            map(&[("flush.messages", "10"), ("retention.ms", "2000")])
        );

        // APPEND on a list setting starts from the effective (default) value, without repeats.
        let next = apply_config_change(
            &cur,
            &defaults,
            &ConfigChange::Incremental(vec![op("cleanup.policy", OP_APPEND, Some("delete"))]),
        )
        .unwrap();
        assert_eq!(next.get("cleanup.policy").unwrap(), "delete");
        // SUBTRACT leaves an empty list, which is not a valid cleanup.policy here.
        let (e, m) = apply_config_change(
            &cur,
            &defaults,
            &ConfigChange::Incremental(vec![op("cleanup.policy", OP_SUBTRACT, Some("delete"))]),
        )
        .unwrap_err();
        assert_eq!(
            (e, m.contains("cleanup.policy")),
            (ResponseError::InvalidConfig, true)
        );
        // APPEND on a non-list setting.
        let (e, m) = apply_config_change(
            &cur,
            &defaults,
            &ConfigChange::Incremental(vec![op("retention.ms", OP_APPEND, Some("1"))]),
        )
        .unwrap_err();
        assert_eq!(e, ResponseError::InvalidConfig);
        assert!(m.contains("append is not allowed"), "{m}");
    }

    #[test]
    fn incremental_refusals_match_kafka() {
        let d = BTreeMap::new();
        let cur = BTreeMap::new();
        let refuse = |ops| {
            apply_config_change(&cur, &d, &ConfigChange::Incremental(ops))
                .unwrap_err()
                .0
        };
        assert_eq!(
            refuse(vec![op("retention.ms", OP_SET, Some("soon"))]),
            ResponseError::InvalidConfig
        );
        assert_eq!(
            refuse(vec![op("no.such", OP_SET, Some("1"))]),
            ResponseError::InvalidConfig
        );
        assert_eq!(
            refuse(vec![op("no.such", OP_DELETE, None)]),
            ResponseError::InvalidConfig
        );
        assert_eq!(
            refuse(vec![op("segment.bytes", OP_SET, Some("10"))]),
            ResponseError::InvalidConfig
        );
        assert_eq!(
            refuse(vec![op("retention.ms", OP_SET, None)]),
            ResponseError::InvalidRequest
        );
        assert_eq!(
            refuse(vec![op("retention.ms", 9, Some("1"))]),
            ResponseError::InvalidRequest
        );
        assert_eq!(
            refuse(vec![
                op("retention.ms", OP_SET, Some("1")),
                op("retention.ms", OP_DELETE, None)
            ]),
            ResponseError::InvalidRequest
        );
    }

    #[test]
    fn replace_drops_keys_not_named() {
        let cur = map(&[("retention.ms", "1000"), ("segment.bytes", "4096")]);
        let next = apply_config_change(
            &cur,
            &BTreeMap::new(),
            &ConfigChange::Replace(vec![("retention.bytes".into(), Some("5000".into()))]),
        )
        .unwrap();
        assert_eq!(next, map(&[("retention.bytes", "5000")]));
        let (e, _) = apply_config_change(
            &cur,
            &BTreeMap::new(),
            &ConfigChange::Replace(vec![("retention.bytes".into(), None)]),
        )
        .unwrap_err();
        assert_eq!(e, ResponseError::InvalidRequest);
    }
}
