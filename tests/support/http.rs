//! HTTP pieces of the end-to-end alerting tests: a recording receiver (axum
//! on 127.0.0.1:0) whose answer can be scripted over time, an async
//! `eventually`, plain GETs, child processes killed on drop, and an
//! independent HMAC-SHA256 to check tripline's webhook signatures with.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Router;

/// One request a [`Receiver`] got.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// What the receiver answered.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

impl Request {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "receiver got a non-JSON body ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// How a [`Receiver`] answers.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// Always this status.
    Always(u16),
    /// `status` until `for_` has passed since the first request, then 200.
    FailFirst { status: u16, for_: Duration },
}

struct Inner {
    requests: Vec<Request>,
    answer: Answer,
    first: Option<Instant>,
}

/// A local HTTP server that records every request.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Mutex<Inner>>,
    pub addr: std::net::SocketAddr,
}

async fn record(
    State(r): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let now = Instant::now();
    let mut inner = r.inner.lock().unwrap();
    let first = *inner.first.get_or_insert(now);
    let status = match inner.answer {
        Answer::Always(s) => s,
        Answer::FailFirst { status, for_ } => {
            if now.duration_since(first) < for_ {
                status
            } else {
                200
            }
        }
    };
    inner.requests.push(Request {
        path: uri.path().to_owned(),
        headers,
        body,
        status,
        at: now,
    });
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    /// Starts on the current tokio runtime.
    pub async fn start(answer: Answer) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test receiver");
        let addr = listener.local_addr().unwrap();
        let r = Receiver {
            inner: Arc::new(Mutex::new(Inner {
                requests: Vec::new(),
                answer,
                first: None,
            })),
            addr,
        };
        let app = Router::new().fallback(record).with_state(r.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        r
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.inner.lock().unwrap().requests.clone()
    }

    pub fn accepted(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.accepted())
            .collect()
    }
}

/// Polls `check` every 200 ms until it returns `Ok`, and returns that; panics
/// with `what` and the last observation after `timeout`. Tests wait for a
/// condition, never for a fixed time.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) => assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for: {what}\nlast observation: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// GET `url`: (status, body), or a description of the failure.
pub async fn get(url: &str) -> Result<(u16, String), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp.text().await.map_err(|e| format!("GET {url}: {e}"))?;
    Ok((status, body))
}

/// A loopback port nothing listens on right now (bind port 0, release).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Panics with a clear message when a required binary is missing: these
/// tests never skip.
pub fn require_binary(path: &str, debian_package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} not found: the end-to-end alerting tests need it \
         (Debian: apt-get install {debian_package}); they never skip"
    );
}

/// A child process killed (and reaped) on drop, with its log file.
pub struct KillOnDrop {
    pub child: Child,
    pub name: &'static str,
    pub log: PathBuf,
}

impl KillOnDrop {
    pub fn log_tail(&self, max: usize) -> String {
        let bytes = std::fs::read(&self.log).unwrap_or_default();
        let start = bytes.len().saturating_sub(max);
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// Panics (with the log) if the process has already exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited early ({status}); log:\n{}",
                self.name,
                self.log_tail(4000)
            );
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- HMAC-SHA256
// Written out here (FIPS 180-4, RFC 2104) so the signature check does not
// share code with the implementation under test.

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                chunk[4 * i],
                chunk[4 * i + 1],
                chunk[4 * i + 2],
                chunk[4 * i + 3],
            ]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&sha256(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(msg);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha256(&inner));
    sha256(&outer)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 4648 base64 (standard alphabet), written here so the tests share no
/// code with the signer.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.trim_end_matches('=').bytes() {
        bits = (bits << 6) | A.iter().position(|&x| x == c)? as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    Some(out)
}

/// Checks a request as a Standard Webhooks receiver does (docs/outputs.md):
/// `webhook-id`, `webhook-timestamp` (±5 min) and `webhook-signature`
/// present; with each `whsec_` secret, HMAC-SHA256 of `id.timestamp.body`
/// must equal one of the space-separated `v1,<base64>` entries. Returns the
/// `webhook-id`.
pub fn verify_standard_webhook(secrets: &[&str], req: &Request) -> Result<String, String> {
    let id = req.header("webhook-id").ok_or("no webhook-id header")?;
    let ts = req
        .header("webhook-timestamp")
        .ok_or("no webhook-timestamp header")?;
    let sig = req
        .header("webhook-signature")
        .ok_or("no webhook-signature header")?;
    let ts_n: u64 = ts
        .parse()
        .map_err(|_| format!("webhook-timestamp {ts:?} is not unix seconds"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(ts_n) > 300 {
        return Err(format!(
            "timestamp {ts} is {}s from now",
            now.abs_diff(ts_n)
        ));
    }
    let mut msg = format!("{id}.{ts}.").into_bytes();
    msg.extend_from_slice(&req.body);
    let given: Vec<Vec<u8>> = sig
        .split(' ')
        .filter_map(|e| e.strip_prefix("v1,").and_then(b64_decode))
        .collect();
    for secret in secrets {
        let key = secret
            .strip_prefix("whsec_")
            .and_then(b64_decode)
            .ok_or_else(|| format!("bad test secret {secret}"))?;
        let want = hmac_sha256(&key, &msg);
        if !given.iter().any(|g| g.as_slice() == want) {
            return Err(format!("no signature in {sig:?} verifies with {secret}"));
        }
    }
    Ok(id.to_owned())
}

#[test]
fn hmac_sha256_matches_rfc_4231() {
    // RFC 4231 test case 2, and FIPS 180-2's "abc".
    assert_eq!(
        hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hex(&sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    // Multi-block input (RFC 4231 test case 6: a 131-byte key).
    assert_eq!(
        hex(&hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
    assert_eq!(b64_decode("aGVsbG8gd29ybGQ=").unwrap(), b"hello world");
    assert_eq!(b64_decode("YQ").unwrap(), b"a");
}

/// Starts `binary` on a free loopback port (`args` gets the port) and waits
/// for its `/-/ready`; a port taken between `free_port()` and the bind makes
/// the service exit, so it retries with a fresh port (5 attempts).
pub async fn start_ready(
    binary: &str,
    name: &'static str,
    dir: &std::path::Path,
    args: impl Fn(u16) -> Vec<String>,
) -> (u16, KillOnDrop) {
    for attempt in 0..5 {
        let port = free_port();
        let log = dir.join(format!("{name}-{attempt}.log"));
        let child = std::process::Command::new(binary)
            .args(args(port))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let mut process = KillOnDrop { child, name, log };
        let ready = eventually(&format!("{name} /-/ready"), Duration::from_secs(30), || {
            let exited = matches!(process.child.try_wait(), Ok(Some(_)));
            async move {
                if exited {
                    return Ok(false);
                }
                match get(&format!("http://127.0.0.1:{port}/-/ready")).await {
                    Ok((200, _)) => Ok(true),
                    other => Err(format!("{other:?}")),
                }
            }
        })
        .await;
        if ready {
            return (port, process);
        }
        eprintln!(
            "{name} exited on port {port}, retrying: {}",
            process.log_tail(2000)
        );
    }
    panic!("{name} did not start after 5 attempts");
}
