//! `cargo run -p tripline-sim --release --example simulate -- OUT_DIR [SEED] [DAYS] [INTEGRATIONS] [RATE_SCALE]`
//! Writes events.jsonl, registry.toml and truth.json and prints the summary and the time taken.

use tripline_sim::{simulate, SimConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = args.first().map_or("sim-out", String::as_str);
    let mut cfg = SimConfig::default();
    if let Some(v) = args.get(1) {
        cfg.seed = v.parse()?;
    }
    if let Some(v) = args.get(2) {
        cfg.days = v.parse()?;
    }
    if let Some(v) = args.get(3) {
        cfg.integrations = v.parse()?;
    }
    if let Some(v) = args.get(4) {
        cfg.rate_scale = v.parse()?;
    }
    let t0 = std::time::Instant::now();
    let s = simulate(&cfg, std::path::Path::new(out))?;
    println!("{}", serde_json::to_string_pretty(&s)?);
    println!("took {:?}", t0.elapsed());
    Ok(())
}
