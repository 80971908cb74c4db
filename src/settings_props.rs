//! Property tests of the config loader (issue 16, item 8): arbitrary TOML
//! and arbitrary `TRIPLINE__…` overrides never panic, and any set of
//! problems — type errors, unknown keys, invalid values, in the file or the
//! environment — is reported all at once.

use proptest::prelude::*;

use crate::settings::load_with_env;

/// Keys that exist (so a fuzzed value reaches their deserializer and
/// validation), as `section.key` paths.
const KEYS: &[&str] = &[
    "engine.bucket_seconds",
    "engine.lateness_seconds",
    "engine.learning_days",
    "engine.max_integrations",
    "engine.max_future_skew_seconds",
    "engine.sensitive_resources",
    "engine.network_prefix_v4",
    "engine.max_open_episodes",
    "engine.alert_budget.per_kind",
    "engine.alert_budget.window_minutes",
    "engine.alert_budget.kinds",
    "detectors.call_spike.p_value",
    "detectors.sustained.ratio",
    "http.listen_addr",
    "http.top_k",
    "http.api_token_env",
    "kafka.brokers",
    "kafka.topics",
    "kafka.batch_max_events",
    "shutdown.deadline_seconds",
    "checkpoint.interval_seconds",
    "checkpoint.on_corrupt",
];

/// A TOML value of any type, some of them hostile.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| if v.is_finite() {
            format!("{v:?}")
        } else {
            "nan".into()
        }),
        any::<bool>().prop_map(|v| v.to_string()),
        "[ -~]{0,20}".prop_map(|s| format!("{s:?}")),
        Just("[]".to_owned()),
        Just("[1, \"a\", true]".to_owned()),
        Just("{ unknown_integration = 0, bogus = 1 }".to_owned()),
        Just("{ a = { b = 1 } }".to_owned()),
        Just("1979-05-27T07:32:00Z".to_owned()),
        Just("18446744073709551616".to_owned()),
    ]
}

/// A config file: known and unknown keys in known and unknown tables,
/// or plain junk.
fn toml_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        (prop::sample::select(KEYS), toml_value()).prop_map(|(k, v)| format!("{k} = {v}")),
        ("[a-z_]{1,12}(\\.[a-z_]{1,12}){0,2}", toml_value())
            .prop_map(|(k, v)| format!("{k} = {v}")),
        "\\[[a-z_.]{1,20}\\]",
        "[ -~]{0,40}",
    ];
    prop::collection::vec(line, 0..12).prop_map(|v| v.join("\n"))
}

/// An environment override of a known or random key.
fn env_pair() -> impl Strategy<Value = (String, String)> {
    let key = prop_oneof![
        prop::sample::select(KEYS).prop_map(|k| k.replace('.', "__").to_uppercase()),
        "[A-Z_]{1,20}",
    ];
    (key, "[ -~]{0,24}").prop_map(|(k, v)| (format!("TRIPLINE__{k}"), v))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_toml_and_env_never_panic(
        text in toml_text(),
        env in prop::collection::vec(env_pair(), 0..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, &text).unwrap();
        match load_with_env(Some(&f), env.clone()) {
            Ok(s) => {
                // What loads is valid and its engine config is usable.
                prop_assert!(s.validate().is_empty());
                prop_assert!(s.engine_config().validate().is_empty());
            }
            Err(e) => prop_assert!(!e.0.is_empty(), "an error names its problems"),
        }
        // Environment alone, too.
        let _ = load_with_env(None, env);
    }
}

/// One problem the loader must report: where it is written (file line or
/// env override) and the path its message must name.
struct Bad {
    table: &'static str,
    line: &'static str,
    env: Option<(&'static str, &'static str)>,
    names: &'static str,
}

const BAD: &[Bad] = &[
    Bad {
        table: "engine",
        line: "bucket_seconds = \"sixty\"",
        env: Some(("TRIPLINE__ENGINE__BUCKET_SECONDS", "sixty")),
        names: "engine.bucket_seconds",
    },
    Bad {
        table: "engine",
        line: "learnin_days = 3",
        env: Some(("TRIPLINE__ENGINE__LEARNIN_DAYS", "3")),
        names: "engine.learnin_days",
    },
    Bad {
        table: "engine",
        line: "lateness_seconds = 99999",
        env: Some(("TRIPLINE__ENGINE__LATENESS_SECONDS", "99999")),
        names: "engine.lateness_seconds",
    },
    Bad {
        table: "engine",
        line: "max_integrations = 1",
        env: Some(("TRIPLINE__ENGINE__MAX_INTEGRATIONS", "1")),
        names: "engine.max_integrations",
    },
    Bad {
        table: "engine",
        line: "network_prefix_v4 = 40",
        env: Some(("TRIPLINE__ENGINE__NETWORK_PREFIX_V4", "40")),
        names: "engine.network_prefix_v4",
    },
    Bad {
        table: "engine.alert_budget",
        line: "window_minutes = 0",
        env: Some(("TRIPLINE__ENGINE__ALERT_BUDGET__WINDOW_MINUTES", "0")),
        names: "engine.alert_budget.window_minutes",
    },
    Bad {
        table: "detectors.call_spike",
        line: "min_ratio = \"high\"",
        env: Some(("TRIPLINE__DETECTORS__CALL_SPIKE__MIN_RATIO", "high")),
        names: "detectors.call_spike.min_ratio",
    },
    Bad {
        table: "detectors.sustained",
        line: "ratio = 0.5",
        env: Some(("TRIPLINE__DETECTORS__SUSTAINED__RATIO", "0.5")),
        names: "detectors.sustained.ratio",
    },
    Bad {
        table: "http",
        line: "top_k = \"many\"",
        env: Some(("TRIPLINE__HTTP__TOP_K", "many")),
        names: "http.top_k",
    },
    Bad {
        table: "http",
        line: "colour = 1",
        env: None,
        names: "http.colour",
    },
    Bad {
        table: "shutdown",
        line: "deadline_seconds = true",
        env: Some(("TRIPLINE__SHUTDOWN__DEADLINE_SECONDS", "true")),
        names: "shutdown.deadline_seconds",
    },
    Bad {
        table: "checkpoint",
        line: "interval_seconds = [1]",
        env: None,
        names: "checkpoint.interval_seconds",
    },
    Bad {
        table: "bogus_section",
        line: "x = 1",
        env: Some(("TRIPLINE__BOGUS_SECTION__X", "1")),
        names: "bogus_section",
    },
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any subset of problems, each in the file or the environment, comes
    /// back in one run: one message per problem, every path named.
    #[test]
    fn every_problem_is_reported_in_one_run(
        picks in prop::collection::btree_set(0..BAD.len(), 1..=BAD.len()),
        in_env in prop::collection::vec(any::<bool>(), BAD.len()),
    ) {
        let mut tables: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        let mut env = Vec::new();
        for &i in &picks {
            let b = &BAD[i];
            match (in_env[i], b.env) {
                (true, Some((k, v))) => env.push((k.to_owned(), v.to_owned())),
                _ => tables.entry(b.table).or_default().push(b.line),
            }
        }
        let text: String = tables
            .iter()
            .map(|(t, lines)| format!("[{t}]\n{}\n", lines.join("\n")))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, &text).unwrap();
        let err = match load_with_env(Some(&f), env.clone()) {
            Ok(_) => return Err(TestCaseError::fail(format!("accepted:\n{text}\n{env:?}"))),
            Err(e) => e,
        };
        let all = err.0.join("\n");
        for &i in &picks {
            prop_assert!(
                all.contains(BAD[i].names),
                "missing {}:\n{all}\n--- file:\n{text}\nenv: {env:?}",
                BAD[i].names
            );
        }
    }
}
