//! The engine's view of one CRM API call.
//!
//! This is not the wire format: `tripline-ingest` parses and validates the JSON
//! of `docs/specs/events.md` and hands the engine a borrowed `Event`, so the hot
//! path allocates nothing per event.

use std::net::IpAddr;

/// What a call did to its resource. Together with the resource it forms a
/// *data type*, e.g. `contacts:read`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Read,
    Write,
    Delete,
    Export,
}

impl Action {
    pub const ALL: [Action; 4] = [Action::Read, Action::Write, Action::Delete, Action::Export];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Delete => "delete",
            Action::Export => "export",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "read" => Some(Action::Read),
            "write" => Some(Action::Write),
            "delete" => Some(Action::Delete),
            "export" => Some(Action::Export),
            // Any case (`READ`, `Export`): the lower-case spelling is the
            // spec's, the others are unambiguous.
            _ if s.len() <= 6 => {
                let mut b = [0u8; 6];
                b[..s.len()].copy_from_slice(s.as_bytes());
                let lower = b.map(|c| c.to_ascii_lowercase());
                match &lower[..s.len()] {
                    b"read" => Some(Action::Read),
                    b"write" => Some(Action::Write),
                    b"delete" => Some(Action::Delete),
                    b"export" => Some(Action::Export),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// One validated API call. All strings borrow from the input buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Event<'a> {
    /// Event time, epoch milliseconds UTC.
    pub ts_ms: i64,
    pub integration_id: &'a str,
    pub resource: &'a str,
    pub action: Action,
    pub status: u16,
    pub key_id: Option<&'a str>,
    pub principal: Option<&'a str>,
    /// Rows returned or affected (spec default 1).
    pub records: u64,
    /// Response size in bytes (spec default 0).
    pub bytes: u64,
    pub source_ip: Option<IpAddr>,
}

impl<'a> Event<'a> {
    /// A minimal event, handy for tests and the simulator.
    pub fn new(ts_ms: i64, integration_id: &'a str, resource: &'a str, action: Action) -> Self {
        Event {
            ts_ms,
            integration_id,
            resource,
            action,
            status: 200,
            key_id: None,
            principal: None,
            records: 1,
            bytes: 0,
            source_ip: None,
        }
    }

    /// 401 and 403 are the statuses `error_burst` watches: an expired, leaked
    /// or under-privileged credential being probed.
    pub fn is_auth_error(&self) -> bool {
        matches!(self.status, 401 | 403)
    }

    /// 429: the gateway rate-limited the call. Not an authentication
    /// failure — a client over its quota, not a credential being probed —
    /// so `error_burst` does not count it.
    pub fn is_rate_limited(&self) -> bool {
        self.status == 429
    }
}
