//! The HTTP API of `tripline run` against a real Kafka-protocol broker (Tansu):
//! its token, feedback that changes what fires and survives a restart, and
//! the API on a port of its own.

use std::time::Duration;

use crate::support::eventually;
use crate::support::kafka::{self, Record};
use crate::support::scenario::{conf, config_with, kinds_for};
use crate::support::tansu::Tansu;
use crate::support::tripline::{self, Run};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn api(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, String) {
    rt().block_on(async {
        let c = reqwest::Client::new();
        let mut r = if method == "POST" {
            c.post(url)
        } else {
            c.get(url)
        };
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        match r.send().await {
            Ok(resp) => (
                resp.status().as_u16(),
                resp.text().await.unwrap_or_default(),
            ),
            // Not listening yet: the caller's `eventually` retries.
            Err(e) => (0, e.to_string()),
        }
    })
}

#[test]
fn the_api_needs_its_token_and_feedback_changes_what_fires_and_survives_a_restart() {
    let tansu = Tansu::start();
    let b = tansu.bootstrap.clone();
    let dir = tempfile::tempdir().unwrap();
    let c = conf(&b);
    c.create_topics(1);
    let registry = dir.path().join("registry.toml");
    std::fs::write(&registry, "[[integrations]]\nid = \"crm-sync\"\nowner = \"ops@acme.example\"\ngranted = [\"contacts:read\"]\n").unwrap();
    let token = "s3cr3t-api-token-for-tests";
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let ckpt = dir.path().join("ckpt");
    // No timer checkpoint within the test (an hour): what the restart
    // restores was saved by the clean stop.
    let section = format!(
        "\n[checkpoint]\ndir = \"{}\"\ninterval_seconds = 3600\n",
        ckpt.display()
    );
    let start_run = || {
        let (config, http) = config_with(dir.path(), &c, &section);
        let text = std::fs::read_to_string(&config).unwrap().replacen(
            "[http]\n",
            &format!("[http]\napi_token_file = \"{}\"\n", token_file.display()),
            1,
        );
        std::fs::write(&config, text).unwrap();
        (Run::start(&config, &registry, &http), http)
    };
    let ev = |ts: &str, resource: &str| {
        Record::keyed_by_integration(format!(
            r#"{{"ts":"{ts}","integration_id":"crm-sync","resource":"{resource}","method":"GET","status":200}}"#
        ))
    };
    let (mut run, http) = start_run();
    kafka::produce_unbatched(&b, &c.topic, &[ev("2026-11-29T10:00:00Z", "deals")]);
    eventually(
        "the first scope violation",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            run.assert_running();
            let k = kinds_for(&b, &c.alerts_topic);
            if k.contains(&("scope_violation".into(), "deals".into())) {
                Ok(())
            } else {
                Err(format!("{k:?}"))
            }
        },
    );
    let base = format!("http://{http}/api/v1");
    assert_eq!(
        api("GET", &format!("{base}/integrations"), None, None).0,
        401
    );
    assert_eq!(
        api("GET", &format!("{base}/integrations"), Some("wrong"), None).0,
        401
    );
    let (code, body) = api("GET", &format!("{base}/integrations"), Some(token), None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("crm-sync") && !body.contains(token), "{body}");
    assert_eq!(
        tripline::http_get(&http, "/metrics").map(|r| r.0),
        Ok(200),
        "metrics stay open"
    );

    let (code, body) = api(
        "POST",
        &format!("{base}/feedback"),
        Some(token),
        Some(serde_json::json!({
            "integration_id": "crm-sync",
            "action": {"type": "accept_data_type", "resource": "notes", "action": "read"},
            "expires_at": "2027-01-01T00:00:00Z",
            "created_at": "2026-11-29T10:00:00Z",
            "author": "oncall@acme.example",
            "reason": "notes sync approved in CHG-1234"
        })),
    );
    assert!(code == 200 || code == 201, "{code}: {body}");
    kafka::produce_unbatched(
        &b,
        &c.topic,
        &[
            ev("2026-11-29T10:05:00Z", "notes"),
            ev("2026-11-29T10:06:00Z", "invoices"),
        ],
    );
    eventually(
        "the invoices violation (after the accepted notes call)",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            run.assert_running();
            let k = kinds_for(&b, &c.alerts_topic);
            if k.contains(&("scope_violation".into(), "invoices".into())) {
                Ok(())
            } else {
                Err(format!("{k:?}"))
            }
        },
    );
    let k = kinds_for(&b, &c.alerts_topic);
    assert!(
        !k.iter().any(|(_, r)| r == "notes"),
        "accepted data type must not alert: {k:?}"
    );
    // A clean stop checkpoints every partition it owns (`release_all`).
    run.stop(Duration::from_secs(15));

    // After a restart the decision is still there (restored from the checkpoint).
    let (mut again, http2) = start_run();
    let trail = eventually(
        "the restarted API answers",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || {
            again.assert_running();
            let (code, body) = api(
                "GET",
                &format!("http://{http2}/api/v1/feedback"),
                Some(token),
                None,
            );
            if code == 200 && body.contains("CHG-1234") {
                Ok(body)
            } else {
                Err(format!("{code}: {body}"))
            }
        },
    );
    assert!(trail.contains("oncall@acme.example"));
    again.stop(Duration::from_secs(15));
}

#[test]
fn with_api_listen_addr_the_api_has_its_own_port_and_the_admin_port_has_no_api() {
    let tansu = Tansu::start();
    let b = tansu.bootstrap.clone();
    let dir = tempfile::tempdir().unwrap();
    let c = conf(&b);
    c.create_topics(1);
    let registry = dir.path().join("registry.toml");
    std::fs::write(&registry, "[[integrations]]\nid = \"crm-sync\"\nowner = \"ops@acme.example\"\ngranted = [\"contacts:read\"]\n").unwrap();
    let token = "s3cr3t-api-token-for-tests";
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let api_addr = format!("127.0.0.1:{}", crate::support::free_port());
    let (config, http) = config_with(dir.path(), &c, "");
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[http]\n",
        &format!(
            "[http]\napi_token_file = \"{}\"\napi_listen_addr = \"{api_addr}\"\n",
            token_file.display()
        ),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let mut run = Run::start(&config, &registry, &http);

    let on_api = eventually(
        "the API answers on its own port",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            run.assert_running();
            let (code, body) = api(
                "GET",
                &format!("http://{api_addr}/api/v1/integrations"),
                Some(token),
                None,
            );
            if code == 200 {
                Ok(body)
            } else {
                Err(format!("{code}: {body}"))
            }
        },
    );
    assert!(on_api.contains("crm-sync"), "{on_api}");
    assert_eq!(
        api(
            "GET",
            &format!("http://{api_addr}/api/v1/integrations"),
            None,
            None
        )
        .0,
        401,
        "the API still needs its token on its own port"
    );
    let (code, body) = api(
        "GET",
        &format!("http://{http}/api/v1/integrations"),
        Some(token),
        None,
    );
    assert_eq!(code, 404, "the admin port must not serve the API: {body}");
    assert_eq!(
        tripline::http_get(&http, "/metrics").map(|r| r.0),
        Ok(200),
        "metrics stay on the admin port"
    );
    // The API port answers only the API (its auth comes first: 401 for any
    // path without the token), never the admin routes.
    let (code, body) = tripline::http_get(&api_addr, "/metrics").expect("API port");
    assert!(
        (code == 401 || code == 404) && !body.contains("# HELP"),
        "metrics are not on the API port: {code} {body}"
    );
    run.stop(Duration::from_secs(15));
}
