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

async fn limited_server(limits: tripline_output::HttpLimits) -> tripline_output::AdminServer {
    tripline_output::serve_with_limits(
        "127.0.0.1:0".parse().unwrap(),
        AdminState {
            metrics: Arc::new(Metrics::new("t", 1).unwrap()),
            readiness: Readiness::new(),
        },
        None,
        limits,
        std::future::pending(),
    )
    .unwrap()
}

/// Opens `n` connections that send a request head without its final blank line.
async fn half_sent(addr: std::net::SocketAddr, n: usize) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        v.push(s);
    }
    v
}

/// Waits (bounded) until the server has closed `s`: EOF, a reset, or an error
/// response followed by EOF.
async fn closed_by_server(mut s: tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 512];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Issue 16: 3,000 half-sent requests stayed open 40 s (20,000 made /metrics
/// and /healthz time out). Now the probes answer while they hang, and the
/// server closes each of them after the header read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_neither_starve_probes_nor_stay_open() {
    let server = limited_server(tripline_output::HttpLimits {
        header_read_timeout: Duration::from_secs(1),
        max_connections: 4096,
    })
    .await;
    let addr = server.local_addr();
    let slow = half_sent(addr, 3000).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for path in ["/healthz", "/metrics"] {
        let r = client.get(format!("http://{addr}{path}")).send().await;
        assert_eq!(r.map(|r| r.status().as_u16()).ok(), Some(200), "{path}");
    }
    let closed = futures_join_all(slow, Duration::from_secs(20)).await;
    assert_eq!(closed, 3000, "half-sent connections closed by the server");
}

async fn futures_join_all(v: Vec<tokio::net::TcpStream>, within: Duration) -> usize {
    let mut set = tokio::task::JoinSet::new();
    for s in v {
        set.spawn(closed_by_server(s, within));
    }
    let mut n = 0;
    while let Some(r) = set.join_next().await {
        n += usize::from(r.unwrap_or(false));
    }
    n
}

/// Beyond `max_connections` a new connection is closed at once instead of
/// holding a file descriptor.
#[tokio::test]
async fn connections_beyond_the_limit_are_closed_at_once() {
    let server = limited_server(tripline_output::HttpLimits {
        header_read_timeout: Duration::from_secs(30),
        max_connections: 8,
    })
    .await;
    let addr = server.local_addr();
    // Nine half-sent requests with room for eight: exactly one is closed
    // (long before the 30 s header timeout); the others stay open.
    let nine = half_sent(addr, 9).await;
    let closed = futures_join_all(nine, Duration::from_secs(3)).await;
    assert_eq!(closed, 1);
}
