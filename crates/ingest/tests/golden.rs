//! Golden tests of the built-in profiles: every `tests/golden/<profile>/X.{jsonl,csv}`
//! is read with that profile and must produce exactly `X.expected.jsonl`:
//! one line per record, the canonical event (as `tripline normalize` prints
//! it) or `{"line":N,"reject":REASON,"detail":…}`; an event whose profile
//! dropped unusable optional fields carries `"_dropped":N`.
//!
//! `TRIPLINE_BLESS=1 cargo test -p tripline-ingest --test golden` rewrites
//! the expected files (review the diff before committing).

use std::io::BufReader;
use std::path::Path;

use tripline_ingest::{load_format, read_events};

fn render(profile: &str, input: &Path) -> String {
    let format = load_format(Some(profile), None).unwrap_or_else(|e| panic!("{e}"));
    let file = std::fs::File::open(input).unwrap();
    let mut out = String::new();
    read_events(&format, BufReader::new(file), |line, r| {
        match r {
            Ok(ev) => {
                let mut buf = Vec::new();
                ev.write_canonical_json(&mut buf);
                let mut s = String::from_utf8(buf).unwrap();
                if ev.dropped_fields() > 0 {
                    s.pop();
                    s.push_str(&format!(",\"_dropped\":{}}}", ev.dropped_fields()));
                }
                out.push_str(&s);
            }
            Err(rej) => out.push_str(
                &serde_json::json!({"line": line, "reject": rej.reason.as_str(), "detail": rej.detail})
                    .to_string(),
            ),
        }
        out.push('\n');
    })
    .unwrap();
    out
}

#[test]
fn every_builtin_profile_matches_its_golden_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var_os("TRIPLINE_BLESS").is_some();
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut profiles: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    profiles.sort();
    for dir in profiles {
        let profile = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        let mut n = 0;
        for input in inputs {
            let name = input.file_name().unwrap().to_str().unwrap().to_owned();
            if name.ends_with(".expected.jsonl") {
                continue;
            }
            let stem = name.rsplit_once('.').unwrap().0;
            let expected_path = dir.join(format!("{stem}.expected.jsonl"));
            let got = render(&profile, &input);
            if bless {
                std::fs::write(&expected_path, &got).unwrap();
            }
            let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
            if got != want {
                failures.push(format!("{profile}/{name}:\n--- want\n{want}--- got\n{got}"));
            }
            n += 1;
        }
        assert!(n > 0, "{profile} has no golden input");
        checked += 1;
    }
    assert_eq!(
        checked,
        tripline_ingest::mapping::builtin_profiles().len(),
        "a built-in profile has no golden directory"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
