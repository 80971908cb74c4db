//! The generic webhook: one signed JSON POST per alert and per resolution,
//! per the Standard Webhooks specification (v1).
//!
//! - A firing alert's body is the alert object of `docs/specs/alerts.md`,
//!   unchanged.
//! - A resolution's body is `{"status":"resolved", "id", "kind", "severity",
//!   "integration_id", "last_seen", "resolved_at", "folded"}`.
//!
//! Headers: `webhook-id` (the notification id: `msg_<alert id>_firing` or
//! `msg_<alert id>_resolved`, the same on every retry and after a restart,
//! and distinct for an alert and its resolution, so a receiver deduplicating
//! on it never discards a resolution), `webhook-timestamp` (unix seconds) and,
//! with signing secrets, `webhook-signature: v1,<base64 HMAC-SHA256(key,
//! id.timestamp.body)>`, one space-separated entry per configured secret (key
//! rotation). `X-Tripline-Event: alert|resolved` says which body it is. With
//! `legacy_signature` the pre-standard `X-Tripline-Timestamp` and
//! `X-Tripline-Signature: sha256=<hex HMAC-SHA256(key, timestamp.body)>` are
//! sent too. Every retry is re-signed with a fresh timestamp.

use std::collections::BTreeMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde::Serialize;
use sha2::Sha256;
use tripline_engine::Resolved;

use super::{EncodeError, Notification, SecretUrl, WireRequest};
use crate::secret::Secret;

/// Standard Webhooks: the notification id.
pub const ID_HEADER: &str = "webhook-id";
/// Standard Webhooks: unix seconds when the request was signed.
pub const STD_TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Standard Webhooks: space-separated `v1,<base64>` signatures.
pub const STD_SIGNATURE_HEADER: &str = "webhook-signature";
/// Legacy (`legacy_signature`): the unix-seconds timestamp that was signed.
pub const TIMESTAMP_HEADER: &str = "x-tripline-timestamp";
/// Legacy (`legacy_signature`): `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-tripline-signature";
/// Header saying `alert` or `resolved`.
pub const EVENT_HEADER: &str = "x-tripline-event";

/// Prefix of a Standard Webhooks secret.
const SECRET_PREFIX: &str = "whsec_";
/// The spec recommends secrets of 24 to 64 random bytes.
const MIN_SECRET_BYTES: usize = 24;
const MAX_SECRET_BYTES: usize = 64;

/// Header names a configuration may not set.
const RESERVED: &[&str] = &[
    "authorization",
    "content-type",
    "content-length",
    "host",
    "webhook-*",
    "x-tripline-*",
];

/// One decoded signing key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How requests are signed.
#[derive(Clone, Debug, Default)]
pub struct Signing {
    /// Standard Webhooks keys; one signature each.
    pub secrets: Vec<SigningKey>,
    /// The key of the legacy `X-Tripline-Signature` header, if enabled.
    pub legacy_key: Option<Secret>,
}

/// A configured webhook.
#[derive(Clone, Debug)]
pub struct Webhook {
    url: SecretUrl,
    signing: Signing,
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

/// Parses whitespace-separated `whsec_<base64>` secrets, pushing a problem
/// (never the value) for each malformed one.
pub(crate) fn parse_signing_secrets(
    prefix: &str,
    raw: &Secret,
    problems: &mut Vec<String>,
) -> Vec<SigningKey> {
    let mut keys = Vec::new();
    for (i, s) in raw.expose().split_whitespace().enumerate() {
        let Some(b64) = s.strip_prefix(SECRET_PREFIX) else {
            problems.push(format!(
                "{prefix}.signing_secret: secret {} does not start with {SECRET_PREFIX:?}",
                i + 1
            ));
            continue;
        };
        match BASE64.decode(b64) {
            Ok(k) if (MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&k.len()) => {
                keys.push(SigningKey(k))
            }
            Ok(k) => problems.push(format!(
                "{prefix}.signing_secret: secret {} decodes to {} bytes; use {MIN_SECRET_BYTES} to \
                 {MAX_SECRET_BYTES} random bytes",
                i + 1,
                k.len()
            )),
            Err(_) => problems.push(format!(
                "{prefix}.signing_secret: secret {} is not valid base64 after {SECRET_PREFIX:?}",
                i + 1
            )),
        }
    }
    if keys.is_empty() && problems.is_empty() {
        problems.push(format!("{prefix}.signing_secret is empty"));
    }
    keys
}

/// `v1,<base64 HMAC-SHA256(key, id.timestamp.body)>`.
pub fn standard_signature(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// Legacy `sha256=<hex HMAC-SHA256(key, timestamp + "." + body)>`.
pub fn signature(key: &[u8], timestamp: &str, body: &[u8]) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The notification id of `n`: stable across retries and restarts, distinct
/// for an alert and its resolution.
pub fn notification_id(n: &Notification) -> String {
    match n {
        Notification::Firing(a) => format!("msg_{}_firing", a.id),
        Notification::Resolved(r) => format!("msg_{}_resolved", r.id),
    }
}

pub(crate) fn custom_headers(
    prefix: &str,
    raw: &BTreeMap<String, String>,
    problems: &mut Vec<String>,
) -> Vec<(HeaderName, HeaderValue)> {
    super::parse_headers(prefix, raw, RESERVED, problems)
}

fn header(v: &str) -> Result<HeaderValue, EncodeError> {
    HeaderValue::from_str(v).map_err(|_| EncodeError::Header)
}

impl Webhook {
    pub(crate) fn new(
        url: SecretUrl,
        signing: Signing,
        bearer: Option<HeaderValue>,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Self {
        Webhook {
            url,
            signing,
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
        let id = notification_id(n);
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
        headers.insert(HeaderName::from_static(ID_HEADER), header(&id)?);
        headers.insert(
            HeaderName::from_static(STD_TIMESTAMP_HEADER),
            header(&timestamp)?,
        );
        if !self.signing.secrets.is_empty() {
            let sigs: Vec<String> = self
                .signing
                .secrets
                .iter()
                .map(|k| standard_signature(&k.0, &id, &timestamp, &body))
                .collect();
            headers.insert(
                HeaderName::from_static(STD_SIGNATURE_HEADER),
                header(&sigs.join(" "))?,
            );
        }
        if let Some(key) = &self.signing.legacy_key {
            headers.insert(
                HeaderName::from_static(TIMESTAMP_HEADER),
                header(&timestamp)?,
            );
            let sig = signature(key.expose().as_bytes(), &timestamp, &body);
            headers.insert(HeaderName::from_static(SIGNATURE_HEADER), header(&sig)?);
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

    fn resolved() -> Resolved {
        Resolved {
            id: "abc".into(),
            kind: AlertKind::OffHours,
            severity: Severity::Info,
            integration_id: "i".into(),
            last_seen: 0,
            resolved_at: 60_000,
            folded: 3,
        }
    }

    #[test]
    fn standard_signature_matches_the_spec_example() {
        // The example of the Standard Webhooks specification.
        let key = BASE64.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            standard_signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                "1614265330",
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_parse_and_bad_ones_are_reported_without_values() {
        let good = format!("whsec_{}", BASE64.encode([7u8; 32]));
        let mut problems = Vec::new();
        let keys =
            parse_signing_secrets("o", &Secret::new(format!("{good}\n {good}")), &mut problems);
        assert_eq!((keys.len(), problems.len()), (2, 0));
        let short = format!("whsec_{}", BASE64.encode([7u8; 8]));
        let raw = format!("nope_SEKRIT whsec_!!SEKRIT {short}");
        parse_signing_secrets("o", &Secret::new(raw), &mut problems);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(!problems.join(" ").contains("SEKRIT"));
    }

    #[test]
    fn resolution_has_its_own_id_and_every_key_signs() {
        let keys = vec![SigningKey(vec![1; 24]), SigningKey(vec![2; 24])];
        let w = Webhook::new(
            SecretUrl(reqwest::Url::parse("http://127.0.0.1/x").unwrap()),
            Signing {
                secrets: keys.clone(),
                legacy_key: Some(Secret::new("k")),
            },
            None,
            vec![],
        );
        let req = w
            .encode(
                &Notification::Resolved(Arc::new(resolved())),
                1_700_000_000_123,
            )
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(v["status"], "resolved");
        assert_eq!(v["id"], "abc");
        assert_eq!(v["resolved_at"], "1970-01-01T00:01:00.000Z");
        assert_eq!(req.headers[ID_HEADER], "msg_abc_resolved");
        assert_eq!(req.headers[STD_TIMESTAMP_HEADER], "1700000000");
        assert_eq!(req.headers[EVENT_HEADER], "resolved");
        let want: Vec<String> = keys
            .iter()
            .map(|k| standard_signature(&k.0, "msg_abc_resolved", "1700000000", &req.body))
            .collect();
        assert_eq!(req.headers[STD_SIGNATURE_HEADER], want.join(" ").as_str());
        assert_eq!(
            req.headers[SIGNATURE_HEADER].to_str().unwrap(),
            signature(b"k", "1700000000", &req.body)
        );
        assert_eq!(req.headers[TIMESTAMP_HEADER], "1700000000");
    }
}
