//! The generic webhook: Standard Webhooks signatures (checked by an
//! implementation of the scheme written here, not the production signer),
//! the legacy header, bodies, secret hygiene.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::support::{dispatcher, eventually, resolved_of, spike, Receiver};

const KEY: &str = "webhook-signing-key-0123456789";
/// Two Standard Webhooks secrets (old and new during a rotation): 24 and 32
/// bytes, base64.
const SECRET_OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_NEW: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// RFC 4648 base64 decoding, written here so the test does not share code
/// with the signer.
fn b64_decode(s: &str) -> Option<Vec<u8>> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let s = s.trim_end_matches('=');
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = A.iter().position(|&x| x == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    Some(out)
}

/// A Standard Webhooks receiver: every `v1,<sig>` entry of
/// `webhook-signature` is tried against HMAC-SHA256(base64-decoded secret,
/// `id.timestamp.body`); one match is enough.
fn verify_standard(secret: &str, id: &str, ts: &str, body: &[u8], header: &str) -> bool {
    let key = b64_decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    header.split(' ').any(|entry| {
        let Some(sig) = entry.strip_prefix("v1,").and_then(b64_decode) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    })
}

#[test]
fn the_test_verifier_accepts_the_spec_example() {
    assert!(verify_standard(
        SECRET_OLD,
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "1614265330",
        br#"{"test": 2432232314}"#,
        "v1,bm90IGl0 v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    ));
    assert!(!verify_standard(
        SECRET_OLD,
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "1614265331",
        br#"{"test": 2432232314}"#,
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    ));
}

#[tokio::test]
async fn standard_webhooks_signatures_verify_with_every_rotated_key() {
    let rx = Receiver::start().await;
    let config = r#"
        [[outputs]]
        name = "hook"
        type = "webhook"
        url_env = "HOOK_URL"
        signing_secret_env = "HOOK_SECRETS"
    "#;
    let secrets = format!("{SECRET_OLD} {SECRET_NEW}");
    let (d, _metrics) = dispatcher(
        config,
        &[("HOOK_URL", &rx.url("/hook")), ("HOOK_SECRETS", &secrets)],
    );
    let a = spike("a1");
    d.submit(std::slice::from_ref(&a), &[]);
    d.submit(&[], &[resolved_of(&a)]);
    eventually(Duration::from_secs(5), "two webhook requests", || {
        rx.accepted().len() == 2
    })
    .await;
    let reqs = rx.requests();
    let mut ids = Vec::new();
    for r in &reqs {
        let id = r.header("webhook-id").expect("webhook-id");
        let ts = r.header("webhook-timestamp").expect("webhook-timestamp");
        let sig = r.header("webhook-signature").expect("webhook-signature");
        assert_eq!(sig.split(' ').count(), 2, "one signature per key: {sig}");
        for secret in [SECRET_OLD, SECRET_NEW] {
            assert!(
                verify_standard(secret, id, ts, &r.body, sig),
                "{secret} does not verify {sig}"
            );
        }
        let other = "whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB";
        assert!(!verify_standard(other, id, ts, &r.body, sig));
        assert!(
            !verify_standard(SECRET_OLD, "msg_other", ts, &r.body, sig),
            "the id must be signed"
        );
        assert!(r.header("x-tripline-signature").is_none(), "legacy is off");
        ids.push(id.to_owned());
    }
    assert_eq!(reqs[0].header("x-tripline-event"), Some("alert"));
    assert_eq!(reqs[1].header("x-tripline-event"), Some("resolved"));
    // The notification id is not the alert id, and a resolution has its own.
    assert_ne!(ids[0], "a1");
    assert_ne!(ids[0], ids[1], "a resolution must not dedupe away");
    assert_eq!(reqs[0].json()["id"], "a1");
    assert_eq!(reqs[1].json()["id"], "a1");
}

fn verify(key: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

#[tokio::test]
async fn legacy_signature_custom_headers_and_resolutions() {
    let rx = Receiver::start().await;
    let url = rx.url("/hook?token=URLTOKEN");
    let config = r#"
        [[outputs]]
        name = "hook"
        type = "webhook"
        url_env = "HOOK_URL"
        legacy_signature = true
        hmac_key_env = "HOOK_KEY"
        bearer_token_env = "HOOK_BEARER"
        headers = { "X-Team" = "secops", "X-Env" = "test" }
    "#;
    let (d, _metrics) = dispatcher(
        config,
        &[
            ("HOOK_URL", &url),
            ("HOOK_KEY", KEY),
            ("HOOK_BEARER", "BEARERTOKEN"),
        ],
    );

    let a = spike("a1");
    d.submit(std::slice::from_ref(&a), &[]);
    d.submit(&[], &[resolved_of(&a)]);
    eventually(Duration::from_secs(5), "two webhook requests", || {
        rx.accepted().len() == 2
    })
    .await;

    let reqs = rx.requests();
    for r in &reqs {
        let ts = r.header("x-tripline-timestamp").expect("timestamp header");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let ts_n: u64 = ts.parse().unwrap();
        assert!(now.abs_diff(ts_n) < 60, "timestamp {ts} is not now");
        let sig = r.header("x-tripline-signature").expect("signature header");
        assert!(verify(KEY, ts, &r.body, sig), "signature does not verify");
        assert!(!verify("wrong-key", ts, &r.body, sig));
        assert!(
            !verify(KEY, &(ts_n + 1).to_string(), &r.body, sig),
            "timestamp must be signed"
        );
        assert_eq!(r.header("x-team"), Some("secops"));
        assert_eq!(r.header("x-env"), Some("test"));
        assert_eq!(r.header("authorization"), Some("Bearer BEARERTOKEN"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.path, "/hook");
    }
    // Firing: the spec's alert object, unchanged.
    let fire = reqs[0].json();
    assert_eq!(reqs[0].header("x-tripline-event"), Some("alert"));
    assert_eq!(fire, serde_json::to_value(&a).unwrap());
    // Resolution: status + the Resolved fields.
    let res = reqs[1].json();
    assert_eq!(reqs[1].header("x-tripline-event"), Some("resolved"));
    assert_eq!(res["status"], "resolved");
    assert_eq!(res["id"], "a1");
    assert_eq!(res["kind"], "call_spike");
    assert_eq!(res["folded"], 4);

    // Duplicate ids are not sent again.
    d.submit(std::slice::from_ref(&a), &[resolved_of(&a)]);
    let stats = &d.stats()[0];
    assert_eq!(stats.grouping.duplicate_alerts, 1);
    assert_eq!(stats.grouping.duplicate_resolutions, 1);
    assert_eq!(stats.delivered, 2);

    // Secrets never show up in Debug output of the config or the dispatcher.
    let settings = crate::support::settings(
        config,
        &[
            ("HOOK_URL", &url),
            ("HOOK_KEY", KEY),
            ("HOOK_BEARER", "BEARERTOKEN"),
        ],
    );
    let debug = format!("{settings:?} {settings:#?} {d:?}");
    for secret in [KEY, "BEARERTOKEN", "URLTOKEN"] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
    assert!(debug.contains("[redacted]"));
}

#[tokio::test]
async fn unsigned_webhook_from_a_secret_file() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("url");
    std::fs::write(&path, format!("{}\n", rx.url("/x"))).unwrap();
    let config = format!(
        "[[outputs]]\nname = \"hook\"\ntype = \"webhook\"\nurl_file = {:?}\n",
        path.display().to_string()
    );
    let (d, _m) = dispatcher(&config, &[]);
    d.submit(&[spike("f1")], &[]);
    eventually(Duration::from_secs(5), "one request", || {
        rx.accepted().len() == 1
    })
    .await;
    let r = &rx.requests()[0];
    assert!(r.header("x-tripline-signature").is_none());
    assert!(r.header("webhook-signature").is_none());
    assert!(r.header("webhook-timestamp").is_some());
    assert!(r.header("webhook-id").is_some());
}
