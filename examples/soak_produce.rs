//! Produces JSONL events from stdin to a Kafka topic, keyed by
//! `integration_id` (as a gateway would): the producer of `scripts/soak.sh`.
//!
//! ```sh
//! soak_produce BROKERS TOPIC < events.jsonl     # prints the count produced
//! ```

use std::io::BufRead;
use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (brokers, topic) = (
        args.next().context("BROKERS")?,
        args.next().context("TOPIC")?,
    );
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .context("producer")?;
    let mut n = 0u64;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let key = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v["integration_id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut rec = BaseRecord::to(&topic).payload(&line).key(&key);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    p.poll(Duration::from_millis(10));
                }
            }
        }
        n += 1;
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).context("flush")?;
    println!("{n}");
    Ok(())
}
