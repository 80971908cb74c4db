//! Property tests (issue 16, item 8): checkpoint decoding never panics on
//! any bytes and refuses every corruption; engine event sequences (hostile
//! times and ids included) never panic, keep state bounded, are
//! deterministic, and a checkpoint taken mid-stream resumes to exactly the
//! alerts of the uninterrupted run. Case counts are modest (seconds).

use proptest::prelude::*;
use tripline_engine::registry::IntegrationDecl;
use tripline_engine::{Action, Engine, EngineConfig, Event, Outputs, Registry};
use tripline_state::{decode, encode, Payload};

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

const START: i64 = 1_764_424_992_000;
const MAX_TS: i64 = 253_402_300_799_000;
const IDS: [&str; 6] = [
    "a",
    "b",
    "mailchimp-sync",
    "m\u{0430}ilchimp-sync",
    "x\u{1b}[2J",
    "c",
];
const RESOURCES: [&str; 4] = ["contacts", "deals", "notes", "r\u{202e}"];

/// One event: (id, resource, action, status, records, time step or jump).
type Ev = (usize, usize, u8, u16, u64, i64);

fn events() -> impl Strategy<Value = Vec<Ev>> {
    let step = prop_oneof![
        8 => 0i64..120_000,
        1 => -3_600_000i64..0,
        1 => Just(i64::MAX),
        1 => Just(i64::MIN),
        1 => 0i64..(40 * 86_400_000),
    ];
    let status = prop_oneof![Just(200u16), Just(401), Just(429), 100u16..600];
    prop::collection::vec(
        (
            0..IDS.len(),
            0..RESOURCES.len(),
            0u8..4,
            status,
            any::<u64>(),
            step,
        ),
        1..300,
    )
}

fn registry() -> Registry {
    Registry::new(
        vec![
            IntegrationDecl::new("mailchimp-sync"),
            IntegrationDecl::new("a"),
        ],
        vec![],
        vec![],
    )
}

fn small_config() -> EngineConfig {
    EngineConfig {
        max_integrations: 16,
        ..EngineConfig::default()
    }
}

/// Runs `evs` from `engine` starting at time `t0`; every alert's kind and
/// id in order, and the last event time.
fn run(engine: &mut Engine, evs: &[Ev], t0: i64) -> (Vec<String>, i64) {
    let mut out = Outputs::default();
    let mut ids = Vec::new();
    let mut t = t0;
    for &(id, res, act, status, records, step) in evs {
        t = match step {
            i64::MAX => MAX_TS,
            i64::MIN => 0,
            s => t.saturating_add(s).clamp(0, MAX_TS),
        };
        let action = [Action::Read, Action::Write, Action::Delete, Action::Export][act as usize];
        engine.process(
            &Event {
                ts_ms: t,
                integration_id: IDS[id],
                resource: RESOURCES[res],
                action,
                status,
                key_id: None,
                principal: None,
                records,
                bytes: 0,
                source_ip: None,
            },
            &mut out,
        );
        for a in out.alerts.drain(..) {
            ids.push(format!("{}:{}", a.kind, a.id));
        }
        out.clear();
    }
    (ids, t)
}

fn checkpoint(engine: Engine, next_offset: i64) -> Vec<u8> {
    encode(&Payload {
        topic: "t".into(),
        partition: 0,
        next_offset,
        written_by: "props".into(),
        engine,
    })
    .unwrap()
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn engine_sequences_are_bounded_and_deterministic(evs in events()) {
        let cfg = small_config();
        let mut e1 = Engine::new(cfg.clone(), Some(registry()));
        let mut e2 = Engine::new(cfg.clone(), Some(registry()));
        let (a1, _) = run(&mut e1, &evs, START);
        let (a2, _) = run(&mut e2, &evs, START);
        prop_assert_eq!(&a1, &a2);
        let st = e1.stats();
        prop_assert!(st.tracked_integrations <= IDS.len());
        prop_assert!(st.tracked_integrations <= cfg.max_integrations);
        prop_assert_eq!(st.events, evs.len() as u64);
    }

    #[test]
    fn a_checkpoint_mid_stream_resumes_to_the_same_alerts(evs in events(), cut in 0usize..300) {
        let cut = cut.min(evs.len());
        let cfg = small_config();
        let mut whole = Engine::new(cfg.clone(), Some(registry()));
        let (all, _) = run(&mut whole, &evs, START);

        let mut first = Engine::new(cfg.clone(), Some(registry()));
        let (mut got, t) = run(&mut first, &evs[..cut], START);
        let back = decode(&checkpoint(first, cut as i64), "mem").unwrap();
        prop_assert_eq!(back.next_offset, cut as i64);
        let mut resumed = back.engine.resume(cfg, Some(registry()));
        let (rest, _) = run(&mut resumed, &evs[cut..], t);
        got.extend(rest);
        prop_assert_eq!(got, all);
    }

    #[test]
    fn every_corruption_of_a_checkpoint_is_refused(
        evs in events(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut e = Engine::new(small_config(), Some(registry()));
        let _ = run(&mut e, &evs, START);
        let mut bytes = checkpoint(e, 1);
        let i = at.index(bytes.len());
        prop_assert!(decode(&bytes[..i], "mem").is_err(), "truncation at {} accepted", i);
        bytes[i] ^= flip;
        prop_assert!(decode(&bytes, "mem").is_err(), "flipped byte {} accepted", i);
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn decoding_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        // Shorter than a header, or without the magic: refused, never a panic.
        prop_assert!(decode(&bytes, "fuzz").is_err());
    }

    #[test]
    fn decoding_a_valid_header_with_junk_payload_never_panics(
        payload in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        use sha2::{Digest, Sha256};
        let mut bytes = b"TRLNCKPT".to_vec();
        bytes.extend_from_slice(&tripline_state::FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&Sha256::digest(&payload));
        bytes.extend_from_slice(&payload);
        // The checksum matches, so this reaches the MessagePack decoder.
        prop_assert!(decode(&bytes, "fuzz").is_err());
    }
}
