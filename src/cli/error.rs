//! CLI errors: what went wrong, said plainly, and the exit code it maps to.

use kafka_protocol::error::ResponseError;

pub type Result<T> = std::result::Result<T, CliError>;

#[derive(Debug, Clone)]
pub enum CliError {
    /// The broker could not be reached (or the connection broke).
    Connect(String),
    /// The broker answered with a Kafka error code.
    Broker {
        code: i16,
        context: String,
        message: Option<String>,
    },
    /// Anything else (protocol trouble, a precondition the CLI checks itself).
    Other(String),
}

impl CliError {
    pub fn connect(msg: impl Into<String>) -> CliError {
        CliError::Connect(msg.into())
    }
    pub fn other(msg: impl Into<String>) -> CliError {
        CliError::Other(msg.into())
    }
    pub fn broker(code: i16, context: &str, message: Option<&str>) -> CliError {
        CliError::Broker {
            code,
            context: context.to_string(),
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        }
    }

    /// The Kafka error code, for broker errors.
    pub fn code(&self) -> Option<i16> {
        match self {
            CliError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Process exit code: 1 for every runtime failure (usage errors exit 2 through clap).
    pub fn exit_code(&self) -> u8 {
        1
    }
}

/// Kafka's name for an error code, e.g. `UNKNOWN_TOPIC_OR_PARTITION`.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_ERROR_CODE_{c}"),
        Some(e) => screaming_snake(&e.to_string()),
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

/// A short human explanation for the codes an operator meets most often.
fn explanation(code: i16) -> Option<&'static str> {
    Some(match code {
        -1 => "the broker hit an unexpected error",
        3 => "the topic or partition does not exist",
        7 => "the request timed out on the broker",
        14 => "the group coordinator is still loading",
        15 => "the group coordinator is not available",
        16 => "this broker is not the group's coordinator",
        17 => "the topic name is not valid",
        24 => "the group id is not valid",
        25 => "the member is not known to the group",
        35 => "the broker does not support this request version",
        36 => "the topic already exists",
        37 => "the number of partitions is not valid",
        38 => "the replication factor is not valid",
        40 => "a topic configuration is not valid",
        41 => "this broker is not the controller",
        42 => "the request is not valid",
        44 => "the broker rejected the request by policy",
        68 => "the group still has members (it is not empty)",
        69 => "the group does not exist",
        _ => return None,
    })
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Connect(m) => write!(f, "{m}"),
            CliError::Other(m) => write!(f, "{m}"),
            CliError::Broker {
                code,
                context,
                message,
            } => {
                write!(f, "{context} failed: {} ({code})", error_name(*code))?;
                if let Some(x) = explanation(*code) {
                    write!(f, ": {x}")?;
                }
                if let Some(m) = message {
                    write!(f, " — broker says: {m}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for CliError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kafkas() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(68), "NON_EMPTY_GROUP");
        assert_eq!(error_name(69), "GROUP_ID_NOT_FOUND");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(9999), "UNKNOWN_ERROR_CODE_9999");
    }
}
