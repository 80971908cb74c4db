//! A real Kafka-protocol broker: Tansu (`tansu broker`, in-memory storage) on
//! a free loopback port, killed on drop, its output in a temp log that is
//! printed when the test fails.
//!
//! The binary is `$TRIPLINE_TANSU` or `~/.cargo/bin/tansu`. A missing binary
//! fails the test with instructions: these tests never skip silently.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, free_port, tail};

pub struct Tansu {
    child: Child,
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub bootstrap: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

pub use super::tansu_bin::binary;

impl Tansu {
    /// Starts a broker and waits until it answers metadata requests.
    pub fn start() -> Tansu {
        let dir = tempfile::tempdir().expect("temp dir for the broker log");
        let log = dir.path().join("tansu.log");
        let out = std::fs::File::create(&log).expect("broker log file");
        let err = out.try_clone().expect("broker log file");
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(binary())
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .env(
                "RUST_LOG",
                std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawning tansu");
        let mut t = Tansu {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let bootstrap = t.bootstrap.clone();
        eventually(
            "the broker to answer metadata requests",
            Duration::from_secs(20),
            Duration::from_millis(100),
            || {
                if let Ok(Some(status)) = t.child.try_wait() {
                    panic!("tansu exited at start ({status}):\n{}", t.log());
                }
                super::kafka::metadata_ok(&bootstrap)
            },
        );
        t
    }

    /// The broker's output so far (the tail of it).
    pub fn log(&self) -> String {
        tail(&self.log, 8 * 1024)
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- tansu log ({}) ----\n{}\n---- end of tansu log ----",
                self.bootstrap,
                self.log()
            );
        }
    }
}
