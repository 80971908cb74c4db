//! The admin server: /metrics, /healthz, /readyz and a merged router.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tripline_output::{serve, AdminState, HealthCheck, Metrics, Readiness};

struct Broken;
impl HealthCheck for Broken {
    fn problems(&self) -> Vec<String> {
        vec!["output x: queue 10/10 full".into()]
    }
}

#[tokio::test]
async fn admin_routes_readiness_and_extra_router() {
    let metrics = Arc::new(Metrics::new("9.9.9", 5).unwrap());
    let readiness = Readiness::new();
    let extra = Router::new().route("/audit/v1/ping", get(|| async { "pong" }));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = serve(
        "127.0.0.1:0".parse().unwrap(),
        AdminState {
            metrics: Arc::clone(&metrics),
            readiness: readiness.clone(),
        },
        Some(extra),
        async move {
            let _ = stop_rx.await;
        },
    )
    .unwrap();
    let base = format!("http://{}", server.local_addr());
    assert_ne!(server.local_addr().port(), 0);
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{base}{path}")).send();

    let r = get("/healthz").await.unwrap();
    assert_eq!(r.status(), 200);

    let r = get("/readyz").await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["reasons"][0], "not consuming");

    readiness.set_consuming(true);
    let r = get("/readyz").await.unwrap();
    assert_eq!(r.status(), 200);
    let text = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(text.contains("tripline_ready 1"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("tripline_build_info{") && l.ends_with(r#"version="9.9.9"} 1"#)),
        "{text}"
    );

    readiness.add_check(Arc::new(Broken));
    let r = get("/readyz").await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["reasons"][0], "output x: queue 10/10 full");
    let text = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(text.contains("tripline_ready 0"));

    assert_eq!(
        get("/audit/v1/ping").await.unwrap().text().await.unwrap(),
        "pong"
    );
    assert_eq!(get("/nope").await.unwrap().status(), 404);

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        get("/healthz").await.is_err(),
        "server still up after shutdown"
    );
}

#[tokio::test]
async fn bind_error_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let state = AdminState {
        metrics: Arc::new(Metrics::new("t", 1).unwrap()),
        readiness: Readiness::new(),
    };
    let err = serve(
        taken.local_addr().unwrap(),
        state,
        None,
        std::future::pending(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("cannot bind"), "{err}");
}
