//! The profiles shipped inside the binary, and how a format is selected:
//! `--format NAME` (a built-in), `--mapping FILE` (a user profile), or both
//! (the file overrides the built-in key by key).

use std::path::Path;
use std::sync::Arc;

use super::profile::{compile, merge, MappingError, RawRouteFile};
use super::{Format, Mapping};

/// (name, TOML) of every built-in profile, in the order `tripline formats`
/// lists them.
const PROFILES: [(&str, &str); 9] = [
    ("canonical", include_str!("../../profiles/canonical.toml")),
    ("kong", include_str!("../../profiles/kong.toml")),
    (
        "salesforce-elf",
        include_str!("../../profiles/salesforce-elf.toml"),
    ),
    (
        "salesforce-apievent",
        include_str!("../../profiles/salesforce-apievent.toml"),
    ),
    ("envoy", include_str!("../../profiles/envoy.toml")),
    ("nginx-json", include_str!("../../profiles/nginx-json.toml")),
    (
        "aws-apigateway",
        include_str!("../../profiles/aws-apigateway.toml"),
    ),
    ("traefik", include_str!("../../profiles/traefik.toml")),
    ("otel-http", include_str!("../../profiles/otel-http.toml")),
];

const ROUTES: &str = include_str!("../../profiles/routes.toml");

/// One line of `tripline formats`.
#[derive(Debug, Clone)]
pub struct BuiltinProfile {
    pub name: &'static str,
    pub description: String,
    pub decoder: String,
}

fn route_file() -> Result<RawRouteFile, MappingError> {
    toml::from_str(ROUTES).map_err(|e| MappingError {
        profile: "routes.toml".into(),
        problems: vec![e.to_string()],
    })
}

fn builtin_value(name: &str) -> Option<toml::Value> {
    PROFILES
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, t)| toml::from_str(t).ok())
}

/// Every built-in profile with its one-line description.
pub fn builtin_profiles() -> Vec<BuiltinProfile> {
    PROFILES
        .iter()
        .map(|(name, text)| {
            let v: toml::Value =
                toml::from_str(text).unwrap_or(toml::Value::Table(Default::default()));
            let get = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
            BuiltinProfile {
                name,
                description: get("description"),
                decoder: get("decoder"),
            }
        })
        .collect()
}

fn unknown(name: &str) -> MappingError {
    MappingError {
        profile: name.to_owned(),
        problems: vec![format!(
            "no built-in format `{name}` (one of {})",
            PROFILES
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        )],
    }
}

/// Compiles a built-in profile by name (`canonical` compiles its profile
/// too; [`load_format`] uses the dedicated canonical parser instead).
pub fn builtin_mapping(name: &str) -> Result<Mapping, MappingError> {
    let v = builtin_value(name).ok_or_else(|| unknown(name))?;
    compile(v, &route_file()?)
}

/// Compiles a user profile text. A profile with `extends = "NAME"` (or,
/// without it, the same `name` as a built-in, or a `base` passed here) is
/// merged over that built-in key by key: tables merge, values and arrays
/// replace.
pub fn mapping_from_str(
    text: &str,
    base: Option<&str>,
    origin: &str,
) -> Result<Mapping, MappingError> {
    let mut user: toml::Value = toml::from_str(text).map_err(|e| MappingError {
        profile: origin.to_owned(),
        problems: vec![e.to_string()],
    })?;
    let extends = match user.as_table_mut().and_then(|t| t.remove("extends")) {
        Some(toml::Value::String(s)) => Some(s),
        Some(_) => {
            return Err(MappingError {
                profile: origin.to_owned(),
                problems: vec!["`extends` must be the name of a built-in format".into()],
            })
        }
        None => None,
    };
    let same_name = user
        .get("name")
        .and_then(|n| n.as_str())
        .filter(|n| builtin_value(n).is_some())
        .map(str::to_owned);
    let base_name = extends.or_else(|| base.map(str::to_owned)).or(same_name);
    let value = match base_name {
        Some(b) => {
            let mut v = builtin_value(&b).ok_or_else(|| unknown(&b))?;
            merge(&mut v, user);
            v
        }
        None => user,
    };
    compile(value, &route_file()?)
}

/// Selects the format of an input: a built-in `name` (default `canonical`),
/// optionally overridden by the profile in `mapping_file`.
pub fn load_format(
    name: Option<&str>,
    mapping_file: Option<&Path>,
) -> Result<Format, MappingError> {
    match (name, mapping_file) {
        (None | Some("canonical"), None) => Ok(Format::Canonical),
        (Some(n), None) => Ok(Format::Mapped(Arc::new(builtin_mapping(n)?))),
        (base, Some(path)) => {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| MappingError {
                profile: origin.clone(),
                problems: vec![format!("cannot read: {e}")],
            })?;
            Ok(Format::Mapped(Arc::new(mapping_from_str(
                &text, base, &origin,
            )?)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_compiles_and_is_listed() {
        let listed = builtin_profiles();
        assert_eq!(listed.len(), PROFILES.len());
        for p in &listed {
            assert!(!p.description.is_empty(), "{}", p.name);
            builtin_mapping(p.name).unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(builtin_mapping("nope").is_err());
    }

    #[test]
    fn user_profiles_override_builtins_key_by_key_and_report_all_problems() {
        let m = mapping_from_str(
            "extends = \"kong\"\nname = \"kong-custom\"\n[fields.integration_id]\npath = \"/consumer/custom_id\"\n",
            None,
            "test",
        )
        .unwrap();
        assert_eq!(m.name(), "kong-custom");
        let err = mapping_from_str(
            "name = \"x\"\ndescription = \"d\"\ndecoder = \"xml\"\n[fields.ts]\npath = \"nope\"\ntime = \"fortnights\"\n[fields.colour]\npath = \"/c\"\n",
            None,
            "test",
        )
        .unwrap_err();
        let all = err.problems.join("\n");
        for want in [
            "decoder",
            "fortnights",
            "colour",
            "integration_id",
            "must start with",
        ] {
            assert!(all.contains(want), "{want} not in {all}");
        }
        let err = mapping_from_str("extends = \"kong\"\n[fields.key_id]\nhash = { key_env = \"TRIPLINE_TEST_UNSET_KEY_VAR\" }\npath = \"/x\"\n", None, "t").unwrap_err();
        assert!(err
            .problems
            .join(" ")
            .contains("TRIPLINE_TEST_UNSET_KEY_VAR"));
    }
}
