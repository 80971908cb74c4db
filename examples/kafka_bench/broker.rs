//! The bench's broker (Tansu or the mock cluster), its topics and the
//! flow-controlled producer.

use super::*;

pub(crate) enum Broker {
    Tansu(Child),
    // Held so the cluster lives as long as the run.
    Mock(#[allow(dead_code)] tripline_kafka::mock::MockKafka),
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Broker::Tansu(c) = self {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) fn start_broker(kind: &str, partitions: i32) -> anyhow::Result<(Broker, String)> {
    match kind {
        "mock" => {
            let m = tripline_kafka::mock::start_mock_cluster(1)?;
            let bs = m.bootstrap_servers();
            m.create_topic(INPUT, partitions)?;
            m.create_topic(INPUT_BARE, partitions)?;
            m.create_topic(ALERTS, 1)?;
            m.create_topic(DLQ, 1)?;
            Ok((Broker::Mock(m), bs))
        }
        "tansu" => {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let url = format!("tcp://127.0.0.1:{port}");
            let bin =
                PathBuf::from(std::env::var_os("HOME").context("HOME")?).join(".cargo/bin/tansu");
            let child = Command::new(bin)
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .args(["--storage-engine", "memory://tansu/"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting tansu")?;
            let broker = Broker::Tansu(child);
            let bs = format!("127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(20);
            while std::net::TcpStream::connect(&bs).is_err() {
                if Instant::now() > deadline {
                    bail!("tansu did not listen on {bs}");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok((broker, bs))
        }
        other => bail!("--broker {other}: tansu or mock"),
    }
}

pub(crate) async fn create_topics(bs: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bs).create()?;
    let topics = [
        NewTopic::new(INPUT, partitions, TopicReplication::Fixed(1)),
        NewTopic::new(INPUT_BARE, partitions, TopicReplication::Fixed(1)),
        NewTopic::new(ALERTS, 1, TopicReplication::Fixed(1)),
        NewTopic::new(DLQ, 1, TopicReplication::Fixed(1)),
    ];
    for r in admin.create_topics(&topics, &AdminOptions::new()).await? {
        if let Err((t, e)) = r {
            bail!("creating {t}: {e}");
        }
    }
    Ok(())
}

pub(crate) fn producer(bs: &str) -> anyhow::Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bs)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "120000")
        .create()?)
}

/// Flow control for producing while consuming: never more than `window`
/// events ahead of what the consumer has taken in.
pub(crate) struct Flow {
    pub(crate) consumed: Box<dyn Fn() -> u64 + Send + Sync>,
    pub(crate) window: u64,
    /// Lines produced so far (read by the spike injector).
    pub(crate) produced: AtomicU64,
}

/// Produces every line to `topic` keyed by its integration, waiting for all
/// acks. Unkeyed: round-robin over `partitions` (librdkafka's sticky
/// partitioner would pile keyless messages onto few partitions).
pub(crate) async fn produce_all(
    p: &FutureProducer,
    topic: &str,
    lines: &[Vec<u8>],
    keyed: bool,
    partitions: i32,
    flow: Option<&Flow>,
) -> anyhow::Result<()> {
    // Acknowledgements are awaited in quarters of the window, so the
    // producer keeps sending while it waits and the consumer never runs dry
    // (an empty fetch on the mock waits out fetch.wait.max.ms).
    let ack_every = flow.map_or(50_000, |f| (f.window / 4).clamp(1, 50_000) as usize);
    let mut inflight = Vec::with_capacity(ack_every);
    for (i, line) in lines.iter().enumerate() {
        if let Some(f) = flow {
            f.produced.store(i as u64, Ordering::Relaxed);
            // Waits for the consumer, but not for ever: a consumer that has
            // stopped (an error, a stall) must fail the run, not hang it.
            let mut last = (f.consumed)();
            let mut moved = Instant::now();
            while i as u64 > last + f.window {
                if moved.elapsed() > FLOW_STALL {
                    bail!(
                        "the consumer took in nothing for {} s ({last} of {} so far): stalled or stopped",
                        FLOW_STALL.as_secs(),
                        lines.len()
                    );
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                let now = (f.consumed)();
                if now != last {
                    last = now;
                    moved = Instant::now();
                }
            }
        }
        let mut rec = FutureRecord::<[u8], [u8]>::to(topic).payload(&line[..]);
        if !keyed {
            rec = rec.partition((i % partitions.max(1) as usize) as i32);
        }
        if let Some(k) = tripline_kafka::mock::integration_key(line).filter(|_| keyed) {
            rec = rec.key(k);
        }
        loop {
            match p.send_result(rec) {
                Ok(d) => {
                    inflight.push(d);
                    break;
                }
                Err((e, r)) => {
                    // Local queue full: let acknowledgements drain.
                    if inflight.is_empty() {
                        bail!("produce: {e}");
                    }
                    rec = r;
                    for d in inflight.drain(..) {
                        d.await?.map_err(|(e, _)| e)?;
                    }
                }
            }
        }
        if inflight.len() >= ack_every {
            for d in inflight.drain(..) {
                d.await?.map_err(|(e, _)| e)?;
            }
        }
    }
    for d in inflight.drain(..) {
        d.await?.map_err(|(e, _)| e)?;
    }
    if let Some(f) = flow {
        f.produced.store(lines.len() as u64, Ordering::Relaxed);
    }
    Ok(())
}
