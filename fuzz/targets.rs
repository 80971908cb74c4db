//! Fuzz targets shared by the stable-Rust fuzzer (`examples/fuzz.rs`) and
//! the regression test that replays every saved input
//! (`tests/fuzz_regressions.rs`). Each takes arbitrary bytes and must return
//! without panicking, whatever they are. See `fuzz/README.md`.

use tripline_engine::{Engine, EngineConfig, Outputs};

/// A fuzz target: a name (the folder of its regressions) and its function.
pub type Target = (&'static str, fn(&[u8]));

pub const TARGETS: &[Target] = &[
    ("event", event),
    ("mapping", mapping),
    ("registry", registry),
    ("checkpoint", checkpoint),
];

/// Every line through the canonical parser, the valid ones through an
/// engine (with a registry, so the registry rules and look-alike checks run).
pub fn event(data: &[u8]) {
    let reg = tripline_ingest::parse_registry(
        "[[integrations]]\nid = \"mailchimp-sync\"\ngranted = [\"contacts:read\"]\n",
        "fuzz.toml",
    )
    .ok();
    let mut engine = Engine::new(EngineConfig::default(), reg);
    let mut out = Outputs::default();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(raw) = tripline_ingest::parse_event(line) {
            engine.process(&raw.event(), &mut out);
            out.clear();
        }
    }
    let _ = engine.stats();
}

/// The whole input as one message of every built-in vendor profile.
pub fn mapping(data: &[u8]) {
    static M: std::sync::OnceLock<Vec<tripline_ingest::Mapping>> = std::sync::OnceLock::new();
    let all = M.get_or_init(|| {
        tripline_ingest::mapping::builtin::builtin_profiles()
            .iter()
            .filter_map(|p| tripline_ingest::mapping::builtin::builtin_mapping(p.name).ok())
            .collect()
    });
    for m in all {
        m.decode(data, &mut |_| {});
    }
}

/// The input as registry TOML.
pub fn registry(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tripline_ingest::parse_registry(text, "fuzz.toml");
    }
}

/// The input as a checkpoint file.
pub fn checkpoint(data: &[u8]) {
    let _ = tripline_state::decode(data, "fuzz");
}
