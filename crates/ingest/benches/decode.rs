//! Per-record decode cost of the built-in profiles (criterion): bytes →
//! validated borrowed event, nothing else (no engine). Records are shaped
//! like the vendors' documented ones (the golden samples), with varying
//! integrations, resources and times so no branch is always taken.
//!
//! - `canonical`: one `docs/specs/events.md` line per record (the floor a
//!   mapped profile is compared with);
//! - `kong`: one `kafka-log` record per message, the shape
//!   `tripline simulate --format kong` writes (issue 12's target: replay of
//!   these within 0.8× of canonical replay, BENCHMARKS.md);
//! - `salesforce-elf`: RestApi CSV files (a header row + 1,000 records each);
//! - `otel-http`: OTLP/JSON messages of 50 log records each.
//!
//! Throughput is in records. Run: `cargo bench -p tripline-ingest --bench decode`
//! (or `-- kong` for one profile). End to end: BENCHMARKS.md, "Mapped input".

use std::fmt::Write as _;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tripline_ingest::{load_format, Format};

const N: usize = 20_000;
const RESOURCES: [&str; 6] = ["contacts", "deals", "companies", "notes", "tickets", "0-1"];
const T0: i64 = 1_764_425_000_000;

fn integration(i: usize) -> String {
    format!("integration-{:02}", i % 30)
}

fn canonical() -> Vec<String> {
    (0..N)
        .map(|i| {
            format!(
                r#"{{"ts":{},"integration_id":"{}","key_id":"key_{:04x}","principal":"svc-{}@acme.example","method":"GET","resource":"{}","records":{},"bytes":{},"status":200,"source_ip":"198.51.100.{}","user_agent":"connector/4.2","tenant":"default"}}"#,
                T0 + i as i64 * 250,
                integration(i),
                i % 30,
                i % 30,
                RESOURCES[i % 5],
                i % 200,
                20_000 + i,
                i % 250
            )
        })
        .collect()
}

fn kong() -> Vec<String> {
    (0..N)
        .map(|i| {
            format!(
                r#"{{"authenticated_entity":{{"consumer_id":"00000000-0000-0000-0000-000000000000","id":"key_{:04x}"}},"client_ip":"198.51.100.{}","consumer":{{"id":"00000000-0000-0000-0000-000000000000","username":"{}"}},"latencies":{{"kong":1,"proxy":40,"request":41}},"request":{{"headers":{{"authorization":"REDACTED","user-agent":"tripline-sim/1.0","x-principal":"svc-{}@acme.example"}},"method":"GET","size":312,"uri":"/crm/v3/objects/{}?limit=100"}},"response":{{"headers":{{"x-records":"{}"}},"size":{},"status":200}},"route":{{"name":"hubspot-objects","paths":["/crm/v3/objects"]}},"service":{{"name":"hubspot"}},"started_at":{},"workspace_name":"default"}}"#,
                i % 30,
                i % 250,
                integration(i),
                i % 30,
                RESOURCES[i % 6],
                i % 200,
                20_000 + i,
                T0 + i as i64 * 250
            )
        })
        .collect()
}

/// RestApi CSV files of 1,000 rows each (a whole 20,000-row file is over
/// the message size bound and would be one `too_large` reject).
fn salesforce_elf() -> Vec<String> {
    const PER_FILE: usize = 1_000;
    let header = String::from(
        "\"EVENT_TYPE\",\"TIMESTAMP\",\"REQUEST_ID\",\"ORGANIZATION_ID\",\"USER_ID\",\"RUN_TIME\",\"CPU_TIME\",\"URI\",\"SESSION_KEY\",\"LOGIN_KEY\",\"USER_TYPE\",\"REQUEST_STATUS\",\"DB_TOTAL_TIME\",\"ENTITY_NAME\",\"METHOD\",\"STATUS_CODE\",\"ROWS_PROCESSED\",\"REQUEST_SIZE\",\"RESPONSE_SIZE\",\"CONNECTED_APP_ID\",\"CLIENT_NAME\",\"TIMESTAMP_DERIVED\",\"USER_ID_DERIVED\",\"CLIENT_IP\",\"URI_ID_DERIVED\"\n",
    );
    let mut files = Vec::new();
    let mut csv = header.clone();
    for i in 0..N {
        if i > 0 && i % PER_FILE == 0 {
            files.push(std::mem::replace(&mut csv, header.clone()));
        }
        let entity = ["Contact", "Account", "Opportunity", "Lead", "Case"][i % 5];
        let _ = writeln!(
            csv,
            "\"RestApi\",\"20261129{:02}{:02}{:02}.{:03}\",\"4exLFFQZ{i:08}\",\"00D5j000000001V\",\"0055j000000utlP\",\"41\",\"18\",\"/services/data/v61.0/sobjects/{entity}/0035j00000AbCdE\",\"WvtsJ1235oW24EbH\",\"Obv9123BzbaxqCo1\",\"Standard\",\"S\",\"1051271\",\"{entity}\",\"GET\",\"200\",\"{}\",\"0\",\"{}\",\"0H4RM00000000Kr0AI\",\"{}\",\"\",\"0055j000000utlPAAQ\",\"198.51.100.{}\",\"\"",
            (i / 3600) % 24,
            (i / 60) % 60,
            i % 60,
            i % 1000,
            i % 200,
            2048 + i,
            integration(i),
            i % 250
        );
    }
    files.push(csv);
    files
}

fn otel_http() -> Vec<String> {
    const PER_MESSAGE: usize = 50;
    (0..N / PER_MESSAGE)
        .map(|m| {
            let mut records = Vec::with_capacity(PER_MESSAGE);
            for j in 0..PER_MESSAGE {
                let i = m * PER_MESSAGE + j;
                records.push(format!(
                    r#"{{"timeUnixNano":"{}000000","severityNumber":9,"body":{{"stringValue":"GET"}},"attributes":[{{"key":"http.request.method","value":{{"stringValue":"GET"}}}},{{"key":"url.path","value":{{"stringValue":"/crm/v3/objects/{}"}}}},{{"key":"http.route","value":{{"stringValue":"/crm/v3/objects/{{objectType}}"}}}},{{"key":"http.response.status_code","value":{{"intValue":"200"}}}},{{"key":"client.address","value":{{"stringValue":"198.51.100.{}"}}}},{{"key":"user_agent.original","value":{{"stringValue":"connector/4.2"}}}},{{"key":"client.id","value":{{"stringValue":"{}"}}}},{{"key":"http.response.body.size","value":{{"intValue":"{}"}}}}],"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}}"#,
                    T0 + i as i64 * 250,
                    RESOURCES[i % 6],
                    i % 250,
                    integration(i),
                    20_000 + i
                ));
            }
            format!(
                r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"crm-gateway"}}}}]}},"scopeLogs":[{{"scope":{{"name":"io.opentelemetry.http"}},"logRecords":[{}]}}]}}]}}"#,
                records.join(",")
            )
        })
        .collect()
}

/// Decodes every message; returns the events (checked below, so a profile
/// that rejects the bench's records fails loudly instead of measuring rejects).
fn decode_all(format: &Format, messages: &[String]) -> (u64, u64) {
    let (mut ok, mut bad) = (0u64, 0u64);
    for m in messages {
        format.decode(m.as_bytes(), &mut |r| match r {
            Ok(ev) => ok += u64::from(std::hint::black_box(ev.event()).status > 0),
            Err(_) => bad += 1,
        });
    }
    (ok, bad)
}

fn bench(c: &mut Criterion) {
    let cases: [(&str, Vec<String>); 4] = [
        ("canonical", canonical()),
        ("kong", kong()),
        ("salesforce-elf", salesforce_elf()),
        ("otel-http", otel_http()),
    ];
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    for (profile, messages) in &cases {
        let format = match load_format(Some(profile), None) {
            Ok(f) => f,
            Err(e) => panic!("profile {profile}: {e}"),
        };
        let (ok, bad) = decode_all(&format, messages);
        assert_eq!(
            (ok, bad),
            (N as u64, 0),
            "{profile}: bench records must decode"
        );
        let bytes: usize = messages.iter().map(String::len).sum();
        g.bench_function(
            BenchmarkId::new(*profile, format!("{}B/record", bytes / N)),
            |b| b.iter(|| decode_all(&format, messages)),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
