//! What the broker knows about a client connection (a [`Session`]) and about one request on it
//! (a [`RequestContext`]), handed to every handler: Kafka's `RequestContext` (header, client id,
//! listener, principal, client software). Authentication (SASL) and quotas will fill in the
//! principal; until then every connection is `User:ANONYMOUS` on the PLAINTEXT listener.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use kafka_protocol::messages::ApiKey;

use crate::wire::RequestFrame;

/// The principal of an unauthenticated connection (Kafka's `KafkaPrincipal.ANONYMOUS`).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// A client's name and version as it announced them in ApiVersions v3+ (KIP-511).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSoftware {
    pub name: String,
    pub version: String,
}

/// One client connection, shared by the contexts of its requests.
#[derive(Debug)]
pub struct Session {
    /// The client's address (None if the socket could not tell).
    pub peer: Option<SocketAddr>,
    /// The listener the connection arrived on (Kafka's listener name).
    pub listener: &'static str,
    /// Who the client is; [`ANONYMOUS`] until authentication exists.
    pub principal: String,
    pub authenticated: bool,
    client_software: RefCell<Option<ClientSoftware>>,
}

impl Session {
    /// A connection accepted on the Kafka listener.
    pub fn plaintext(peer: Option<SocketAddr>) -> Rc<Session> {
        Rc::new(Session {
            peer,
            listener: "PLAINTEXT",
            principal: ANONYMOUS.to_string(),
            authenticated: false,
            client_software: RefCell::new(None),
        })
    }

    /// What the client said it is in its last ApiVersions v3+ request.
    pub fn client_software(&self) -> Option<ClientSoftware> {
        self.client_software.borrow().clone()
    }

    pub fn set_client_software(&self, software: ClientSoftware) {
        *self.client_software.borrow_mut() = Some(software);
    }
}

/// One request: its header fields and the session it came on.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    /// The header's client id (empty if the client sent none).
    pub client_id: String,
    pub session: Rc<Session>,
}

impl RequestContext {
    pub fn new(frame: &RequestFrame, session: &Rc<Session>) -> RequestContext {
        RequestContext {
            api_key: frame.api_key,
            api_version: frame.api_version,
            correlation_id: frame.header.correlation_id,
            client_id: frame
                .header
                .client_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            session: session.clone(),
        }
    }
}
