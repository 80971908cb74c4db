//! Build metadata for `tripline_build_info` (from `build.rs`).

/// Build metadata for `tripline_build_info` (from `build.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: String,
    /// Git revision, or "unknown" (a build without `.git` and without
    /// `TRIPLINE_REVISION`).
    pub revision: String,
    pub rustc: String,
    pub target: String,
}

impl BuildInfo {
    /// This build, with `version` (the binary's package version).
    pub fn current(version: &str) -> Self {
        BuildInfo {
            version: version.to_owned(),
            revision: env!("TRIPLINE_BUILD_REVISION").to_owned(),
            rustc: env!("TRIPLINE_BUILD_RUSTC").to_owned(),
            target: env!("TRIPLINE_BUILD_TARGET").to_owned(),
        }
    }
}
