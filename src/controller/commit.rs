//! The one way a metadata change happens: proposed to the metadata quorum (`quorum`), and
//! answered once it is committed and applied on this node (`state_machine`: the committed image,
//! then `shard::publish` to every shard). With no voters configured the quorum is this node
//! alone, on the same path. Nothing else writes the metadata.
//!
//! Changes are serialized on this node: each operation holds the controller lock from its
//! validation until it is applied, so two concurrent requests for one name cannot both pass
//! validation here, and a delete has renamed a topic's directories before a create of the same
//! name can run. Across nodes the log decides: a record that no longer fits when it is applied
//! is skipped everywhere and its proposer gets the reason.

use kafka_protocol::error::ResponseError;

use super::state;
use crate::metadata::MetadataRecord;
use crate::quorum::driver::ProposeError;
use crate::runtime::file::SerialLock;
use crate::shard::current;

/// How long a change may wait for the quorum to commit it.
const COMMIT_TIMEOUT_MS: u64 = 30_000;

thread_local! {
    static CONTROLLER_LOCK: std::rc::Rc<SerialLock> = std::rc::Rc::new(SerialLock::new());
}

/// The lock every metadata change holds from validation to its application.
pub(super) fn controller_lock() -> std::rc::Rc<SerialLock> {
    CONTROLLER_LOCK.with(|l| l.clone())
}

/// Why a change did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CommitError {
    /// Committed, but it no longer fit the metadata when applied (another change came first):
    /// skipped on every node.
    Refused(String),
    /// Not committed: no leader, no majority within the timeout, or the quorum stopped. It may
    /// still commit later (the client retries, and a repeat is refused or idempotent).
    NotCommitted(String),
}

impl CommitError {
    /// Kafka's error code: `refused` for a refusal (the operation knows what it means),
    /// REQUEST_TIMED_OUT when the quorum did not commit, as Kafka's controller answers.
    pub fn error(&self, refused: ResponseError) -> ResponseError {
        match self {
            CommitError::Refused(_) => refused,
            CommitError::NotCommitted(_) => ResponseError::RequestTimedOut,
        }
    }
}

impl std::fmt::Display for CommitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommitError::Refused(why) | CommitError::NotCommitted(why) => f.write_str(why),
        }
    }
}

impl From<CommitError> for String {
    fn from(e: CommitError) -> String {
        e.to_string()
    }
}

/// Commits `record` through the quorum and waits until it is applied on this node.
pub(super) async fn commit(record: MetadataRecord) -> Result<(), CommitError> {
    let Some(quorum) = state::quorum() else {
        return Err(CommitError::NotCommitted(
            "metadata changes must run on the controller shard".to_string(),
        ));
    };
    let bytes =
        serde_json::to_vec(&record).map_err(|e| CommitError::NotCommitted(e.to_string()))?;
    match current()
        .timer
        .timeout(COMMIT_TIMEOUT_MS, quorum.propose(bytes))
        .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(ProposeError::Refused(why))) => Err(CommitError::Refused(why)),
        Ok(Err(e)) => Err(CommitError::NotCommitted(e.to_string())),
        Err(_) => Err(CommitError::NotCommitted(format!(
            "the metadata quorum did not commit the change within {COMMIT_TIMEOUT_MS} ms"
        ))),
    }
}
