//! `tripline simulate --format kong`: the simulator's canonical events
//! rewritten as Kong `kafka-log` records (the shape of
//! `kong.log.serialize()`), so `replay --format kong` can be measured and
//! checked against canonical replay on the same events (BENCHMARKS.md).
//!
//! Kong has no CRM object or row count: the resource goes into a HubSpot
//! path (`/crm/v3/objects/{resource}`, plus `/export` for exports) the row
//! count and principal into headers, which `profiles/kong-sim.toml`-style
//! overrides read back (see tests/formats_cli.rs).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use serde_json::json;
use tripline_engine::Action;

/// The profile override that reads the simulator's Kong records back into
/// exactly the canonical events (exports and row counts included).
pub const KONG_SIM_MAPPING: &str = r#"extends = "kong"
name = "kong-sim"
description = "Kong records written by `tripline simulate --format kong`"

[fields.records]
path = "/response/headers/x-records"

[fields.principal]
path = "/request/headers/x-principal"

[[routes.rules]]
path = "/crm/v3/objects/{resource}/export"
action = "export"
"#;

/// Rewrites `input` (canonical JSONL) as Kong records into `output`; lines
/// that are not valid canonical events are copied unchanged.
pub fn convert(input: &Path, output: &Path) -> anyhow::Result<u64> {
    let r =
        BufReader::new(File::open(input).with_context(|| format!("opening {}", input.display()))?);
    let mut w = BufWriter::new(
        File::create(output).with_context(|| format!("creating {}", output.display()))?,
    );
    let mut n = 0u64;
    for line in r.split(b'\n') {
        let line = line?;
        match tripline_ingest::parse_event(&line) {
            Ok(raw) => {
                let e = raw.event();
                let (method, suffix) = match e.action {
                    Action::Read => ("GET", ""),
                    Action::Write => ("POST", ""),
                    Action::Delete => ("DELETE", ""),
                    Action::Export => ("POST", "/export"),
                };
                let mut rec = json!({
                    "request": {
                        "method": method,
                        "uri": format!("/crm/v3/objects/{}{suffix}?limit=100", e.resource),
                        "headers": {"user-agent": "tripline-sim/1.0", "authorization": "REDACTED"},
                        "size": 312,
                    },
                    "response": {"status": e.status, "size": e.bytes, "headers": {"x-records": e.records.to_string()}},
                    "latencies": {"kong": 1, "proxy": 40, "request": 41},
                    "consumer": {"username": e.integration_id, "id": "00000000-0000-0000-0000-000000000000"},
                    "route": {"name": "hubspot-objects", "paths": ["/crm/v3/objects"]},
                    "service": {"name": "hubspot"},
                    "started_at": e.ts_ms,
                    "workspace_name": raw.tenant().unwrap_or("default"),
                });
                if let Some(p) = e.principal {
                    rec["request"]["headers"]["x-principal"] = json!(p);
                }
                if let Some(k) = e.key_id {
                    rec["authenticated_entity"] =
                        json!({"id": k, "consumer_id": "00000000-0000-0000-0000-000000000000"});
                }
                if let Some(ip) = e.source_ip {
                    rec["client_ip"] = json!(ip.to_string());
                }
                serde_json::to_writer(&mut w, &rec)?;
            }
            Err(_) => w.write_all(&line)?,
        }
        w.write_all(b"\n")?;
        n += 1;
    }
    w.flush()?;
    Ok(n)
}
