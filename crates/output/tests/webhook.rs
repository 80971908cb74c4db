//! The generic webhook: signature, headers, bodies, secret hygiene.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::support::{dispatcher, eventually, resolved_of, spike, Receiver};

const KEY: &str = "webhook-signing-key-0123456789";

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
async fn webhook_is_signed_with_custom_headers_and_resolutions() {
    let rx = Receiver::start().await;
    let url = rx.url("/hook?token=URLTOKEN");
    let config = r#"
        [[outputs]]
        name = "hook"
        type = "webhook"
        url_env = "HOOK_URL"
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
    assert!(r.header("x-tripline-timestamp").is_some());
}
