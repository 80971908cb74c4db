//! Where the Tansu broker binary is: `$TRIPLINE_TANSU` (what
//! `scripts/setup.sh --test` installs and `scripts/test.sh` exports), else
//! `~/.cargo/bin/tansu`. Std only, so the kafka crate's tests include this
//! same file (`#[path]`, crates/kafka/tests/tansu.rs) rather than a copy.

use std::path::PathBuf;

/// Where the broker binary is, or a panic that says how to get one.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TRIPLINE_TANSU") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "TRIPLINE_TANSU={} is not a file; point it at a `tansu` binary",
            p.display()
        );
        return p;
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let p = home.join(".cargo/bin/tansu");
    assert!(
        p.is_file(),
        "the Kafka end-to-end tests need the Tansu broker: `cargo install tansu` \
         (or set TRIPLINE_TANSU=/path/to/tansu); not found at {}",
        p.display()
    );
    p
}
