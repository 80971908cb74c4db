//! `tripline score-series` end to end: NAB layout in and out, causality,
//! determinism, score range, and bad rows reported with their line number.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn tripline() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tripline"));
    c.env("TRIPLINE_LOG", "warn");
    for (k, _) in std::env::vars() {
        if k.starts_with("TRIPLINE__") {
            c.env_remove(k);
        }
    }
    c
}

fn run(args: &[&str]) -> Output {
    tripline()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tripline")
}

/// A NAB-style series: 5-minute rows, a daily pattern, noise, one spike.
fn series(rows: usize, seed: u64) -> String {
    let mut s = String::from("timestamp,value\n");
    let mut state = seed.max(1);
    for i in 0..rows {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state % 1000) as f64 / 500.0 - 1.0;
        let minutes = i * 5;
        let (d, h, m) = (1 + minutes / 1440, (minutes / 60) % 24, minutes % 60);
        let base = if (8..18).contains(&h) { 60.0 } else { 20.0 };
        let spike = if i == rows * 3 / 4 { 200.0 } else { 0.0 };
        writeln!(
            s,
            "2014-04-{d:02} {h:02}:{m:02}:00,{:.3}",
            base + 3.0 * noise + spike
        )
        .unwrap();
    }
    s
}

fn scores(csv: &str) -> Vec<f64> {
    csv.lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse::<f64>().unwrap())
        .collect()
}

fn score_file(dir: &Path, name: &str, body: &str) -> Output {
    let f = dir.join(name);
    std::fs::write(&f, body).unwrap();
    run(&["score-series", f.to_str().unwrap()])
}

#[test]
fn a_data_root_is_mirrored_in_nab_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nab");
    for (cat, file) in [("catA", "one.csv"), ("catB", "two.csv")] {
        std::fs::create_dir_all(root.join("data").join(cat)).unwrap();
        std::fs::write(root.join("data").join(cat).join(file), series(600, 3)).unwrap();
    }
    let out = dir.path().join("out");
    let o = run(&[
        "score-series",
        "--out",
        out.to_str().unwrap(),
        root.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (cat, file) in [("catA", "tripline_one.csv"), ("catB", "tripline_two.csv")] {
        let text = std::fs::read_to_string(out.join(cat).join(file)).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("timestamp,value,anomaly_score"));
        assert_eq!(lines.count(), 600);
        assert!(
            text.contains("\n2014-04-01 00:05:00,"),
            "timestamps kept as written"
        );
    }
}

#[test]
fn appending_rows_never_changes_earlier_scores() {
    let dir = tempfile::tempdir().unwrap();
    let full = series(3000, 9);
    let lines: Vec<&str> = full.lines().collect();
    let whole = score_file(dir.path(), "whole.csv", &full);
    assert!(whole.status.success());
    let whole = scores(&String::from_utf8_lossy(&whole.stdout));
    for cut in [200, 1000, 2250, 2251] {
        let prefix = lines[..=cut].join("\n") + "\n";
        let o = score_file(dir.path(), "prefix.csv", &prefix);
        assert!(o.status.success());
        assert_eq!(
            scores(&String::from_utf8_lossy(&o.stdout)),
            whole[..cut],
            "cut {cut}"
        );
    }
}

#[test]
fn the_same_input_gives_byte_identical_output() {
    let dir = tempfile::tempdir().unwrap();
    let body = series(2000, 4);
    let a = score_file(dir.path(), "a.csv", &body);
    let b = score_file(dir.path(), "a.csv", &body);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn every_score_is_in_the_unit_interval_and_the_spike_stands_out() {
    let dir = tempfile::tempdir().unwrap();
    let o = score_file(dir.path(), "s.csv", &series(3000, 5));
    assert!(o.status.success());
    let s = scores(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(s.len(), 3000);
    assert!(s.iter().all(|v| (0.0..=1.0).contains(v)));
    let spike = s[2250];
    let others = s[600..2250].iter().copied().fold(0.0, f64::max);
    assert!(spike > others, "spike {spike} vs max before {others}");
}

#[test]
fn bad_rows_are_reported_with_their_line_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let body = "timestamp,value\n\
                2014-04-01 00:00:00,1\n\
                2014-04-01 00:05:00,\u{1b}[31mred\n\
                not a time,2\n\
                2014-04-01 00:15:00\n\
                2014-04-01 00:20:00,4\n";
    let o = score_file(dir.path(), "bad.csv", body);
    assert_eq!(o.status.code(), Some(65));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.csv: line 3: value is not a number"),
        "{err}"
    );
    assert!(err.contains("bad.csv: line 4: timestamp is not"), "{err}");
    assert!(
        err.contains("bad.csv: line 5: fewer fields than the header"),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "input echoed raw: {err}");
    assert!(err.contains("3 rows refused"), "{err}");
    // The valid rows are all scored.
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(scores(&out).len(), 2);

    let o = score_file(dir.path(), "nohead.csv", "time,v\n1,2\n");
    assert_eq!(o.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 1: the header must name"));
}

#[test]
fn a_bad_series_setting_is_a_config_problem() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.csv");
    std::fs::write(&f, series(10, 1)).unwrap();
    let o = tripline()
        .args(["score-series", f.to_str().unwrap()])
        .env("TRIPLINE__SERIES__LEVEL_ALPHA", "2")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("series.level_alpha"));
}
