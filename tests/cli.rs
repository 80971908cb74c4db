//! The `tripline` command line: replay, check-config, simulate.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn tripline() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tripline"));
    c.env("TRIPLINE_LOG", "warn");
    // Make sure the developer's environment does not leak into the tests.
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

fn simulate(dir: &Path) {
    let out = run(&[
        "simulate",
        "--seed",
        "5",
        "--days",
        "12",
        "--integrations",
        "6",
        "--rate-scale",
        "0.3",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["events.jsonl", "registry.toml", "truth.json"] {
        assert!(dir.join(f).exists(), "{f} written");
    }
}

#[test]
fn replay_is_byte_identical_across_runs_and_reports_rejects() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path());
    let reg = dir.path().join("registry.toml");
    let ev = dir.path().join("events.jsonl");
    let args = [
        "replay",
        "--registry",
        reg.to_str().unwrap(),
        ev.to_str().unwrap(),
    ];
    let a = run(&args);
    let b = run(&args);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, b.stdout, "same input and config: same bytes");
    let stdout = String::from_utf8(a.stdout).unwrap();
    assert!(
        stdout.lines().count() >= 5,
        "registry incidents alert even in a short run: {stdout}"
    );
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in [
            "id",
            "kind",
            "severity",
            "integration_id",
            "key_id",
            "resource",
            "detected_at",
            "window_start",
            "window_end",
            "observed",
            "expected",
            "score",
            "summary",
            "evidence",
        ] {
            assert!(v.get(key).is_some(), "alert lacks {key}: {line}");
        }
        let id = v["id"].as_str().unwrap();
        assert!(
            id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
        let score = v["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score));
        assert!(v["detected_at"].as_str().unwrap().ends_with('Z'));
    }
    let stderr = String::from_utf8_lossy(&a.stderr);
    assert!(
        stderr.contains("rejected invalid_json") || stderr.contains("rejected invalid_field"),
        "{stderr}"
    );
    assert!(stderr.contains("events/s"), "{stderr}");
}

/// `replay --threads N` parses on N threads and shards integrations over N
/// engines; its stdout is byte-identical to one engine's, across many chunks
/// and including escaped ids, a repeated key, rejected lines and a line too
/// long to hold.
#[test]
fn replay_threads_output_is_byte_identical_to_one_thread() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path());
    let reg = dir.path().join("registry.toml");
    let all = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    // A prefix keeps the test quick in a debug build.
    let text: String = all.lines().take(20_000).flat_map(|l| [l, "\n"]).collect();
    let last: serde_json::Value = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap();
    let mut extra = String::new();
    for (i, id) in ["esc\"aped-1", "plain-new", "esc\"aped-2"]
        .iter()
        .enumerate()
    {
        let mut v = last.clone();
        v["integration_id"] = serde_json::Value::from(*id);
        v["principal"] = serde_json::Value::from(format!("p-extra-{i}"));
        extra.push_str(&v.to_string());
        extra.push('\n');
        // The same event with the key repeated, and a broken line.
        let dup = v
            .to_string()
            .replacen('{', r#"{"integration_id":"decoy","#, 1);
        extra.push_str(&dup);
        extra.push_str("\n{\"ts\":\n");
    }
    // A line too long to hold.
    extra.push_str(&"x".repeat(2 << 20));
    extra.push('\n');
    let ev = dir.path().join("mixed.jsonl");
    std::fs::write(&ev, format!("{text}{extra}{text}")).unwrap();
    let args = |t: &str| {
        run(&[
            "replay",
            "--threads",
            t,
            "--registry",
            reg.to_str().unwrap(),
            ev.to_str().unwrap(),
        ])
    };
    let one = args("1");
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    assert!(
        String::from_utf8_lossy(&one.stdout).contains("esc\\\"aped-1"),
        "the escaped id raised its own alert"
    );
    let summary = |o: &Output| {
        let e = String::from_utf8_lossy(&o.stderr).into_owned();
        let line = e
            .lines()
            .find(|l| l.contains("tripline replay:"))
            .unwrap()
            .to_owned();
        // Everything but the timing.
        line.split(';').next().unwrap().to_owned()
    };
    for t in ["2", "3", "7"] {
        let many = args(t);
        assert!(
            many.status.success(),
            "{}",
            String::from_utf8_lossy(&many.stderr)
        );
        assert_eq!(
            one.stdout, many.stdout,
            "--threads {t} differs from --threads 1"
        );
        assert_eq!(summary(&one), summary(&many), "--threads {t}");
    }
}

#[test]
fn replay_reads_stdin_and_keeps_going_past_bad_lines() {
    let input = concat!(
        r#"{"ts":"2026-11-29T14:03:12.345Z","integration_id":"shadow","resource":"contacts","method":"GET","status":200}"#,
        "\nnot json\n",
        r#"{"ts":"2026-11-29T14:03:13Z","integration_id":"a","resource":"deals","method":"GET","status":200}"#,
        "\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("r.toml");
    std::fs::write(
        &reg,
        "[[integrations]]\nid = \"a\"\ngranted = [\"contacts:read\"]\n",
    )
    .unwrap();
    let mut child = tripline()
        .args(["replay", "--registry", reg.to_str().unwrap(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let kinds: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, ["unknown_integration", "scope_violation"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("rejected invalid_json     1"));
}

#[test]
fn unusable_inputs_fail_with_one_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let missing = run(&["replay", "/nonexistent/events.jsonl"]);
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("cannot open /nonexistent/events.jsonl"),
        "{err}"
    );
    assert!(missing.stdout.is_empty());

    let bad_reg = dir.path().join("bad.toml");
    std::fs::write(
        &bad_reg,
        "[[integrations]]\nid = \"x\"\nnetworks = [\"300.1.1.0/24\"]\nfoo = 1\n",
    )
    .unwrap();
    let out = run(&["check-config", "--registry", bad_reg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:3") && err.contains("invalid CIDR"),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:4") && err.contains("unknown field `foo`"),
        "{err}"
    );

    let bad_cfg = dir.path().join("c.toml");
    std::fs::write(&bad_cfg, "[engine]\nbucket_seconds = 7\nlearnin_days = 3\n").unwrap();
    let out = tripline()
        .args(["check-config", "--config", bad_cfg.to_str().unwrap()])
        .env("TRIPLINE__HTTP__LISTEN_ADDR", "nowhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("learnin_days") && err.contains("listen_addr"),
        "all problems at once: {err}"
    );

    let ok = run(&["check-config"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// `tripline demo` with output on a pipe, as `tripline demo 2>&1 | cat` sees
/// it: the environment's logging variables removed, then `extra` set.
fn demo_on_a_pipe(args: &[&str], extra: &[(&str, &str)]) -> String {
    let mut c = tripline();
    for k in [
        "TRIPLINE_LOG",
        "RUST_LOG",
        "TRIPLINE_LOG_FORMAT",
        "NO_COLOR",
    ] {
        c.env_remove(k);
    }
    let out = c
        .env("TRIPLINE__HTTP__LISTEN_ADDR", "127.0.0.1:0")
        .envs(extra.iter().copied())
        .args([
            "demo",
            "--days",
            "9",
            "--integrations",
            "3",
            "--rate",
            "5000",
        ])
        .args(["--exit-after", "1"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tripline demo");
    assert!(out.status.success(), "demo failed: {out:?}");
    let mut all = String::from_utf8_lossy(&out.stdout).into_owned();
    all.push_str(&String::from_utf8_lossy(&out.stderr));
    all
}

#[test]
fn demo_logs_on_a_pipe_carry_no_escape_bytes() {
    let all = demo_on_a_pipe(&[], &[]);
    assert!(all.contains(" INFO "), "the default level is info: {all}");
    assert!(
        !all.contains('\u{1b}'),
        "an escape byte reached a pipe: {all:?}"
    );
}

#[test]
fn demo_honours_rust_log_as_the_fallback_filter() {
    let all = demo_on_a_pipe(&[], &[("RUST_LOG", "warn")]);
    assert!(all.contains("tripline demo"), "the demo ran: {all}");
    assert!(
        !all.contains("INFO"),
        "RUST_LOG=warn printed an INFO line: {all}"
    );
    // TRIPLINE_LOG wins over RUST_LOG, and --log-level over both.
    let all = demo_on_a_pipe(&[], &[("RUST_LOG", "warn"), ("TRIPLINE_LOG", "info")]);
    assert!(
        all.contains(" INFO "),
        "TRIPLINE_LOG=info beats RUST_LOG: {all}"
    );
    let all = demo_on_a_pipe(&["--log-level", "warn"], &[("TRIPLINE_LOG", "info")]);
    assert!(
        !all.contains("INFO"),
        "--log-level beats TRIPLINE_LOG: {all}"
    );
}

#[test]
fn log_format_json_writes_one_json_object_per_stderr_line() {
    let mut c = tripline();
    c.env_remove("TRIPLINE_LOG");
    let out = c
        .env("TRIPLINE__HTTP__LISTEN_ADDR", "127.0.0.1:0")
        .args(["--log-format", "json", "--log-level", "info"])
        .args([
            "demo",
            "--days",
            "9",
            "--integrations",
            "3",
            "--rate",
            "5000",
        ])
        .args(["--exit-after", "1"])
        .stdin(Stdio::null())
        .output()
        .expect("run tripline demo");
    assert!(out.status.success(), "demo failed: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines at info");
    for l in lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v.get("level").is_some(), "no level field: {l}");
    }
}

#[test]
fn an_invalid_log_level_flag_is_a_usage_error() {
    let out = run(&["--log-level", "x=[", "check-config"]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--log-level"));
}

/// The Docker quick start of docs/operations.md works copy-pasted: its
/// `docker run` line, run as the image would (`check-config` with the
/// mounted `deploy/kubernetes/config` and exactly the documented `-e`
/// variables, evaluated by a shell like the copy-paste would be), is
/// accepted (exit 0, not 64).
#[test]
fn documented_docker_quick_start_passes_check_config() {
    let root = env!("CARGO_MANIFEST_DIR");
    let ops = std::fs::read_to_string(Path::new(root).join("docs/operations.md")).unwrap();
    let section = &ops[ops.find("### Docker").expect("Docker section")..];
    let block = &section[section.find("```sh").expect("sh block")..];
    let block = &block[..block[5..].find("```").expect("end of block") + 5];
    let joined = block.replace("\\\n", " ");
    let run_line = joined
        .lines()
        .find(|l| l.trim_start().starts_with("docker run"))
        .expect("a docker run line");
    // Every `-e NAME=VALUE` (VALUE may be quoted and contain $(...)).
    let words: Vec<&str> = run_line.split_whitespace().collect();
    let mut envs = Vec::new();
    let mut mount = None;
    for (i, w) in words.iter().enumerate() {
        if *w == "-e" {
            // Re-join a quoted value split by whitespace.
            let mut v = words[i + 1].to_owned();
            let mut j = i + 2;
            while v.matches('"').count() % 2 == 1 && j < words.len() {
                v.push(' ');
                v.push_str(words[j]);
                j += 1;
            }
            envs.push(v);
        }
        if *w == "-v" && words[i + 1].contains(":/etc/tripline") {
            mount = Some(words[i + 1].trim_matches('"').replace("$PWD", root));
        }
    }
    let mount = mount.expect("the config mount");
    let host_dir = mount.split(':').next().unwrap();
    assert!(
        envs.iter().any(|e| e.starts_with("WEBHOOK_URL=")),
        "{envs:?}"
    );
    let script = format!(
        "exec env {} \"$TRIPLINE\" check-config --config {host_dir}/config.toml --registry {host_dir}/registry.toml",
        envs.join(" ")
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(&script);
    cmd.env("TRIPLINE", env!("CARGO_BIN_EXE_tripline"))
        .env("TRIPLINE_LOG", "warn");
    for (k, _) in std::env::vars() {
        if k.starts_with("TRIPLINE__") || k.starts_with("WEBHOOK_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().expect("sh");
    assert!(
        out.status.success(),
        "documented quick start: {script}\nexit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
