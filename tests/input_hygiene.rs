//! Hostile input at the edges (issue 16, item 7): reading is bounded, a BOM
//! is accepted, config problems come all at once, secrets are checked.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

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

const EVENT: &str = r#"{"ts":"2026-11-29T14:03:12.345Z","integration_id":"a","resource":"contacts","method":"GET","status":200}"#;

/// Peak resident memory of a process, in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A 1 GiB line without a newline must be skipped while reading, never
/// buffered whole (it used to cost 1.05 GB RSS before the 64 KiB check).
#[test]
fn replay_skips_an_oversize_line_without_buffering_it() {
    let mut child = tripline()
        .args(["replay", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{EVENT}").unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..1024 {
        stdin.write_all(&chunk).unwrap();
    }
    // Everything but the last pipe-full has been read by now.
    let peak = peak_rss_kib(pid);
    writeln!(stdin).unwrap();
    writeln!(stdin, "{EVENT}").unwrap();
    drop(stdin);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        peak < 256 * 1024,
        "peak RSS {peak} KiB while a 1 GiB line was read"
    );
    assert!(stderr.contains("3 lines, 2 events, 1 rejected"), "{stderr}");
    assert!(stderr.contains("rejected too_large        1"), "{stderr}");
}

/// A file saved with a UTF-8 byte-order mark: its first event is an event.
#[test]
fn replay_accepts_a_leading_byte_order_mark() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bom.jsonl");
    std::fs::write(&f, format!("\u{feff}{EVENT}\n{EVENT}\n")).unwrap();
    let out = tripline()
        .args(["replay", f.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("2 lines, 2 events, 0 rejected"), "{stderr}");
}
