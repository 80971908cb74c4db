//! Property tests (issue 16, item 8): the event parser, the bounded line
//! reader, every built-in mapping decoder and the registry loader never
//! panic on any input, bound what they accept, and are deterministic.
//! Case counts are modest so each test takes seconds.

use std::io::{BufReader, Cursor};

use proptest::prelude::*;
use tripline_ingest::lines::{read_bounded_line, Line};
use tripline_ingest::mapping::builtin::{builtin_mapping, builtin_profiles};
use tripline_ingest::{parse_event, parse_registry};

/// Every built-in profile, compiled once.
fn mappings() -> &'static [tripline_ingest::Mapping] {
    static M: std::sync::OnceLock<Vec<tripline_ingest::Mapping>> = std::sync::OnceLock::new();
    M.get_or_init(|| {
        builtin_profiles()
            .iter()
            .map(|p| builtin_mapping(p.name).unwrap())
            .collect()
    })
}

fn config(cases: u32) -> ProptestConfig {
    // PROPTEST_CASES, when set, overrides the modest default (deeper runs).
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// JSON values of the shapes an attacker would try in an event field.
fn json_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:e}")),
        Just("1e999".to_owned()),
        Just("-0".to_owned()),
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        ".{0,40}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        "[a-z:/\\-]{0,300}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just("\"2026-11-29T14:03:12.345Z\"".to_owned()),
        Just("\"9999-12-31T23:59:59Z\"".to_owned()),
        Just("\"GET\"".to_owned()),
    ]
}

const FIELDS: [&str; 12] = [
    "ts",
    "integration_id",
    "resource",
    "method",
    "status",
    "action",
    "key_id",
    "principal",
    "records",
    "bytes",
    "source_ip",
    "fields",
];

/// An object with a random subset of the event fields (repeats allowed).
fn event_object() -> impl Strategy<Value = String> {
    prop::collection::vec((0..FIELDS.len(), json_value()), 0..14).prop_map(|kv| {
        let parts: Vec<String> = kv
            .into_iter()
            .map(|(k, v)| format!("\"{}\":{v}", FIELDS[k]))
            .collect();
        format!("{{{}}}", parts.join(","))
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn parse_event_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_event(&bytes);
    }

    #[test]
    fn parse_event_bounds_what_it_accepts(obj in event_object()) {
        let first = parse_event(obj.as_bytes()).map(|r| format!("{:?}", r.event()));
        // Deterministic.
        let again = parse_event(obj.as_bytes()).map(|r| format!("{:?}", r.event()));
        prop_assert_eq!(&first, &again);
        if let Ok(raw) = parse_event(obj.as_bytes()) {
            let ev = raw.event();
            prop_assert!(!ev.integration_id.is_empty() && ev.integration_id.len() <= 256);
            prop_assert!(!ev.resource.is_empty() && ev.resource.len() <= 128);
            prop_assert!((100..=599).contains(&ev.status));
            prop_assert!(ev.ts_ms >= 0);
        }
    }

    #[test]
    fn bounded_lines_never_exceed_the_limit(
        input in prop::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), any::<u8>()], 0..2048),
        limit in 1usize..64,
        cap in 1usize..32,
    ) {
        let mut r = BufReader::with_capacity(cap, Cursor::new(input.clone()));
        let mut buf = Vec::new();
        let mut seen = Vec::new();
        loop {
            match read_bounded_line(&mut r, &mut buf, limit).unwrap() {
                Line::Eof => break,
                Line::Ok => {
                    prop_assert!(buf.len() <= limit);
                    seen.push(Some(buf.clone()));
                }
                Line::Oversize { len } => {
                    prop_assert!(len > limit as u64);
                    prop_assert!(buf.len() <= limit);
                    seen.push(None);
                }
            }
        }
        // The lines are the input's lines, oversize ones skipped.
        let mut want: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        if input.last() == Some(&b'\n') || input.is_empty() {
            want.pop();
        }
        prop_assert_eq!(seen.len(), want.len());
        for (got, w) in seen.iter().zip(want) {
            match got {
                Some(g) => prop_assert_eq!(g.as_slice(), w),
                None => prop_assert!(w.len() > limit),
            }
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn every_builtin_decoder_survives_any_message(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        obj in event_object(),
    ) {
        for m in mappings() {
            for input in [bytes.as_slice(), obj.as_bytes()] {
                // No panic; outcomes are deterministic.
                let (mut a, mut b) = (Vec::new(), Vec::new());
                m.decode(input, &mut |r| a.push(r.map(|e| format!("{:?}", e.event()))));
                m.decode(input, &mut |r| b.push(r.map(|e| format!("{:?}", e.event()))));
                prop_assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn registry_loader_never_panics_on_text(text in "(\\[\\[integrations\\]\\]\n|id = \"[a-z]{0,4}\"\n|granted = \\[\"[a-z:*]{0,10}\"\\]\n|networks = \\[\"[0-9./]{0,12}\"\\]\n|\\[\\[keys\\]\\]\n|integration = \"[a-z]{0,3}\"\n|revoked_at = \"[0-9TZ:-]{0,20}\"\n|.{0,10}\n){0,12}") {
        let a = parse_registry(&text, "p.toml").map(|r| r.integrations().len()).map_err(|e| e.to_string());
        let b = parse_registry(&text, "p.toml").map(|r| r.integrations().len()).map_err(|e| e.to_string());
        prop_assert_eq!(a, b);
    }

    #[test]
    fn generated_registries_load_and_look_up(ids in prop::collection::btree_set("[a-z][a-z0-9-]{0,20}", 1..40)) {
        let mut text = String::new();
        for (i, id) in ids.iter().enumerate() {
            text.push_str(&format!(
                "[[integrations]]\nid = \"{id}\"\ngranted = [\"contacts:read\"]\n\n[[keys]]\nid = \"key-{i}\"\nintegration = \"{id}\"\n\n"
            ));
        }
        let reg = parse_registry(&text, "gen.toml").unwrap();
        prop_assert_eq!(reg.integrations().len(), ids.len());
        for id in &ids {
            prop_assert!(reg.integration(id).is_some());
            prop_assert!(reg.imitated(id).is_none());
        }
    }
}
