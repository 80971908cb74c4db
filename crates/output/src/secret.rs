//! Secrets: values that must never reach a log, a `Debug` dump or an error.
//!
//! Configuration never holds a secret inline. It names where to read it:
//! `<field>_env = "VAR"` (an environment variable) or `<field>_file =
//! "/path"` (a file, e.g. a mounted Kubernetes secret; one trailing newline is
//! stripped). Both are resolved once at startup by [`resolve`].

use std::fmt;
use std::path::Path;

/// A secret string. `Debug` and `Display` print `[redacted]`; the only way to
/// the value is [`Secret::expose`], which is greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Call only where it goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where secrets come from. Tests pass a map; the binary passes the process
/// environment ([`ProcessEnv`]).
pub trait SecretSource {
    /// The value of environment variable `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
    /// The content of the file at `path`, or an error message without content.
    fn read_file(&self, path: &Path) -> Result<String, String>;
}

/// The real process environment and filesystem.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl SecretSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read_file(&self, path: &Path) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| e.kind().to_string())
    }
}

/// Resolves a secret given as `<field>_env` or `<field>_file`. Pushes a
/// problem (naming the field, the variable or path — never the value) and
/// returns `None` when it is missing, ambiguous, unreadable or empty.
/// `required = false` allows neither to be set.
pub fn resolve(
    field: &str,
    env: Option<&str>,
    file: Option<&Path>,
    required: bool,
    source: &dyn SecretSource,
    problems: &mut Vec<String>,
) -> Option<Secret> {
    let value = match (env, file) {
        (Some(_), Some(_)) => {
            problems.push(format!("set only one of `{field}_env` and `{field}_file`"));
            return None;
        }
        (None, None) => {
            if required {
                problems.push(format!("`{field}_env` or `{field}_file` is required"));
            }
            return None;
        }
        (Some(var), None) => match source.var(var) {
            Some(v) => v,
            None => {
                problems.push(format!(
                    "`{field}_env`: environment variable {var} is not set"
                ));
                return None;
            }
        },
        (None, Some(path)) => match source.read_file(path) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!(
                    "`{field}_file`: cannot read {}: {e}",
                    path.display()
                ));
                return None;
            }
        },
    };
    let value = value.strip_suffix('\n').unwrap_or(&value);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.trim().is_empty() {
        problems.push(format!("`{field}`: the secret is empty"));
        return None;
    }
    Some(Secret::new(value))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A fake environment for config tests.
    #[derive(Default)]
    pub(crate) struct FakeEnv {
        pub vars: HashMap<String, String>,
        pub files: HashMap<String, String>,
    }

    impl SecretSource for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }
        fn read_file(&self, path: &Path) -> Result<String, String> {
            self.files
                .get(&path.display().to_string())
                .cloned()
                .ok_or_else(|| "not found".to_owned())
        }
    }

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn resolve_cases() {
        let mut env = FakeEnv::default();
        env.vars.insert("K".into(), "abc".into());
        env.files.insert("/f".into(), "from-file\n".into());
        env.files.insert("/empty".into(), "\n".into());
        let mut p = Vec::new();
        assert_eq!(
            resolve("k", Some("K"), None, true, &env, &mut p)
                .unwrap()
                .expose(),
            "abc"
        );
        assert_eq!(
            resolve("k", None, Some(Path::new("/f")), true, &env, &mut p)
                .unwrap()
                .expose(),
            "from-file"
        );
        assert!(p.is_empty());
        assert!(resolve("k", None, None, false, &env, &mut p).is_none());
        assert!(p.is_empty());
        assert!(resolve("k", None, None, true, &env, &mut p).is_none());
        assert!(resolve("k", Some("K"), Some(Path::new("/f")), true, &env, &mut p).is_none());
        assert!(resolve("k", Some("NOPE"), None, true, &env, &mut p).is_none());
        assert!(resolve("k", None, Some(Path::new("/empty")), true, &env, &mut p).is_none());
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p
            .iter()
            .all(|m| !m.contains("abc") && !m.contains("from-file")));
    }
}
