//! The generic webhook: one signed JSON POST per alert and per resolution.
//!
//! - A firing alert's body is the alert object of `docs/specs/alerts.md`,
//!   unchanged.
//! - A resolution's body is `{"status":"resolved", "id", "kind", "severity",
//!   "integration_id", "last_seen", "resolved_at", "folded"}`.
//!
//! Headers: `Content-Type: application/json`, `X-Tripline-Event: alert` or
//! `resolved`, `X-Tripline-Timestamp: <unix seconds>` and, when a key is
//! configured, `X-Tripline-Signature: sha256=<hex HMAC-SHA256(key,
//! timestamp + "." + body)>`. The timestamp is signed so a receiver can refuse
//! replays older than a few minutes. Every retry is re-signed with a fresh
//! timestamp.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde::Serialize;
use sha2::Sha256;
use tripline_engine::Resolved;

use super::{EncodeError, Notification, SecretUrl, WireRequest};
use crate::secret::Secret;

/// Header carrying the unix-seconds timestamp that was signed.
pub const TIMESTAMP_HEADER: &str = "x-tripline-timestamp";
/// Header carrying `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-tripline-signature";
/// Header saying `alert` or `resolved`.
pub const EVENT_HEADER: &str = "x-tripline-event";

/// Header names a configuration may not set.
const RESERVED: &[&str] = &[
    "authorization",
    "content-type",
    "content-length",
    "host",
    "x-tripline-*",
];

/// A configured webhook.
#[derive(Clone, Debug)]
pub struct Webhook {
    url: SecretUrl,
    key: Option<Secret>,
    bearer: Option<HeaderValue>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The resolution body.
#[derive(Serialize)]
struct ResolvedBody<'a> {
    status: &'static str,
    #[serde(flatten)]
    resolved: &'a Resolved,
}

/// `sha256=<hex HMAC-SHA256(key, timestamp + "." + body)>`.
pub fn signature(key: &[u8], timestamp: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub(crate) fn custom_headers(
    prefix: &str,
    raw: &BTreeMap<String, String>,
    problems: &mut Vec<String>,
) -> Vec<(HeaderName, HeaderValue)> {
    super::parse_headers(prefix, raw, RESERVED, problems)
}

impl Webhook {
    pub(crate) fn new(
        url: SecretUrl,
        key: Option<Secret>,
        bearer: Option<HeaderValue>,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Self {
        Webhook {
            url,
            key,
            bearer,
            headers,
        }
    }

    pub(crate) fn encode(&self, n: &Notification, now_ms: i64) -> Result<WireRequest, EncodeError> {
        let (event, body) = match n {
            Notification::Firing(a) => ("alert", serde_json::to_vec(a.as_ref())?),
            Notification::Resolved(r) => (
                "resolved",
                serde_json::to_vec(&ResolvedBody {
                    status: "resolved",
                    resolved: r,
                })?,
            ),
        };
        let timestamp = now_ms.div_euclid(1000).to_string();
        let mut headers = HeaderMap::new();
        for (k, v) in &self.headers {
            headers.insert(k.clone(), v.clone());
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            HeaderName::from_static(EVENT_HEADER),
            HeaderValue::from_static(event),
        );
        headers.insert(
            HeaderName::from_static(TIMESTAMP_HEADER),
            HeaderValue::from_str(&timestamp).map_err(|_| EncodeError::Header)?,
        );
        if let Some(key) = &self.key {
            let sig = signature(key.expose().as_bytes(), &timestamp, &body);
            headers.insert(
                HeaderName::from_static(SIGNATURE_HEADER),
                HeaderValue::from_str(&sig).map_err(|_| EncodeError::Header)?,
            );
        }
        if let Some(b) = &self.bearer {
            headers.insert(AUTHORIZATION, b.clone());
        }
        Ok(WireRequest {
            url: self.url.clone(),
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tripline_engine::{AlertKind, Severity};

    #[test]
    fn signature_matches_a_known_vector() {
        // echo -n '1700000000.{}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature(b"key", "1700000000", b"{}"),
            format!("sha256={}", {
                let mut m = <Hmac<Sha256> as Mac>::new_from_slice(b"key").unwrap();
                m.update(b"1700000000.{}");
                hex::encode(m.finalize().into_bytes())
            })
        );
        assert_ne!(
            signature(b"key", "1700000000", b"{}"),
            signature(b"key", "1700000001", b"{}")
        );
    }

    #[test]
    fn resolution_body_has_status_and_fields() {
        let w = Webhook::new(
            SecretUrl(reqwest::Url::parse("http://127.0.0.1/x").unwrap()),
            Some(Secret::new("k")),
            None,
            vec![],
        );
        let r = Resolved {
            id: "abc".into(),
            kind: AlertKind::OffHours,
            severity: Severity::Info,
            integration_id: "i".into(),
            last_seen: 0,
            resolved_at: 60_000,
            folded: 3,
        };
        let req = w
            .encode(&Notification::Resolved(Arc::new(r)), 1_700_000_000_123)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(v["status"], "resolved");
        assert_eq!(v["id"], "abc");
        assert_eq!(v["folded"], 3);
        assert_eq!(v["resolved_at"], "1970-01-01T00:01:00.000Z");
        assert_eq!(req.headers[TIMESTAMP_HEADER], "1700000000");
        assert_eq!(req.headers[EVENT_HEADER], "resolved");
        assert_eq!(
            req.headers[SIGNATURE_HEADER].to_str().unwrap(),
            signature(b"k", "1700000000", &req.body)
        );
    }
}
