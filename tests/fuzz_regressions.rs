//! Every input the fuzzer (`examples/fuzz.rs`) ever saved — a panic or a
//! slow input — and the hand-written hostile inputs beside them, replayed
//! through its target on every test run: none may panic again.

use std::path::Path;

use super::fuzz_targets::TARGETS;

#[test]
fn every_saved_fuzz_input_runs_without_panicking() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut replayed = 0;
    for (name, f) in TARGETS {
        let Ok(dir) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for file in dir.flatten() {
            let data = std::fs::read(file.path()).unwrap();
            let r = std::panic::catch_unwind(|| f(&data));
            assert!(r.is_ok(), "{name}: {} panics", file.path().display());
            replayed += 1;
        }
    }
    assert!(
        replayed >= 4,
        "the regression corpus is missing ({replayed} inputs)"
    );
}
