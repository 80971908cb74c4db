//! The bare consumer (the floor) and what reads tripline's side: the
//! counting observer and the alerts-topic reader.

use super::*;

/// The floor: a consumer that only reads. Seconds from its first message to
/// its `n`-th.
pub(crate) fn bare_consume(
    bs: &str,
    topic: &str,
    n: u64,
    consumed: Option<Arc<AtomicU64>>,
    abort: &AtomicBool,
    fetch_wait_ms: &str,
) -> anyhow::Result<f64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bs)
        // The pipeline's fetch wait: the two consumers fetch alike.
        .set("fetch.wait.max.ms", fetch_wait_ms)
        .set("group.id", "bench-bare")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .create()?;
    c.subscribe(&[topic])?;
    let mut next: HashMap<i32, i64> = HashMap::new();
    let mut got = 0u64;
    let mut bytes = 0usize;
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut errors = 0u64;
    while got < n {
        if Instant::now() > deadline || abort.load(Ordering::Relaxed) {
            bail!("bare consumer read only {got} of {n} ({errors} consume errors)");
        }
        if let Some(r) = c.poll(Duration::from_millis(100)) {
            // librdkafka reports transient errors (a broker connection
            // going up) through poll and retries itself: count, go on.
            let m = match r {
                Ok(m) => m,
                Err(e) => {
                    errors += 1;
                    if errors <= 5 {
                        eprintln!("  bare consumer: {e} (retried by librdkafka)");
                    }
                    continue;
                }
            };
            first.get_or_insert_with(Instant::now);
            bytes += m.payload().map_or(0, <[u8]>::len);
            got += 1;
            // A gap in offsets: the broker trimmed data nobody had read.
            let expect = next.entry(m.partition()).or_insert(0);
            if m.offset() != *expect {
                bail!(
                    "partition {}: offset {} after {}: unread data was trimmed (use a smaller --window)",
                    m.partition(),
                    m.offset(),
                    *expect
                );
            }
            *expect = m.offset() + 1;
            if let Some(c) = &consumed {
                c.store(got, Ordering::Relaxed);
            }
        }
    }
    std::hint::black_box(bytes);
    Ok(first.map_or(0.0, |f| f.elapsed().as_secs_f64()))
}

/// Counts what the pipeline took in; remembers when.
#[derive(Default)]
pub(crate) struct Counting {
    pub(crate) received: AtomicU64,
    pub(crate) first: Mutex<Option<Instant>>,
    pub(crate) reached: Mutex<Option<Instant>>,
    pub(crate) target: AtomicU64,
}

impl Observer for Counting {
    fn events_received(&self, n: u64) {
        if let Ok(mut f) = self.first.lock() {
            f.get_or_insert_with(Instant::now);
        }
        let total = self.received.fetch_add(n, Ordering::Relaxed) + n;
        if total >= self.target.load(Ordering::Relaxed) {
            if let Ok(mut r) = self.reached.lock() {
                r.get_or_insert_with(Instant::now);
            }
        }
    }
}

/// Alerts seen so far: (integration, detected_at, when it was read).
type Seen = Arc<Mutex<Vec<(String, i64, Instant)>>>;

/// Reads the alerts topic on its own thread.
pub(crate) fn alert_reader(
    bs: &str,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(Seen, std::thread::JoinHandle<()>)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bs)
        .set("group.id", "bench-alert-reader")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "latest")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    c.subscribe(&[ALERTS])?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::clone(&seen);
    let h = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(20)) {
                let now = Instant::now();
                if let Some(a) = m
                    .payload()
                    .and_then(|p| serde_json::from_slice::<Alert>(p).ok())
                {
                    if a.kind == AlertKind::CallSpike {
                        out.lock()
                            .unwrap()
                            .push((a.integration_id, a.detected_at, now));
                    }
                }
            }
        }
    });
    Ok((seen, h))
}
