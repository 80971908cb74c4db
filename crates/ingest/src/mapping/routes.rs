//! Route tables: a URI path → `resource`, `endpoint` and `action`.
//!
//! No gateway log names the CRM object an API call touched; the path does.
//! A rule is a path template, matched segment by segment (first match wins):
//!
//! | segment      | matches |
//! |--------------|---------|
//! | `sobjects`   | exactly that text |
//! | `{resource}` | any one segment, which becomes the resource |
//! | `{name}`     | any one segment (ignored) |
//! | `v*`         | a segment with that prefix/suffix around `*` (`v61.0`, `v3`) |
//! | `**`         | the rest of the path (last segment only) |
//!
//! The matched template itself is the `endpoint` (low-cardinality by
//! construction: ids never appear in it), borrowed from the profile. The
//! resource is borrowed from the path; its OData key suffix (`accounts(…)`)
//! is cut, it is looked up in the rule set's alias map (`0-1` → `contacts`,
//! `Contact` → `contacts`) and lower-cased (allocating only when it has
//! upper-case letters).

use std::borrow::Cow;
use tripline_engine::Action;

use super::decode::{bytes_eq, short_eq};
use super::transform::{lower, soql_from, strip_query};
use super::ValueMap;

#[derive(Debug, Clone)]
enum Seg {
    Lit(Box<str>),
    Any,
    Resource,
    Glob(Box<str>, Box<str>),
    Rest,
}

/// Where a rule's resource comes from.
#[derive(Debug, Clone)]
pub enum RuleResource {
    /// The `{resource}` segment.
    Capture,
    /// A fixed name (`$batch`-like endpoints that still mean one thing).
    Const(Box<str>),
    /// The object after `FROM` in the SOQL `q=` parameter (Salesforce query).
    Soql,
    /// The rule fixes the action only; the resource must come from a field.
    None,
}

#[derive(Debug, Clone)]
pub struct Rule {
    segs: Vec<Seg>,
    /// Segments before a trailing `**` (all of them without one), and
    /// whether there is one: a path of another length is refused before
    /// any segment is compared.
    fixed: usize,
    rest: bool,
    template: Box<str>,
    resource: RuleResource,
    action: Option<Action>,
    aliases: Option<usize>,
}

/// What to do when no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Reject the event as `unmapped_resource` (the default).
    #[default]
    Reject,
    /// The first path segment that is not `api`, `rest`, `services` or a
    /// version (`v1`, `v61.0`, `2026-03`).
    FirstSegment,
}

/// Compiled rules plus the alias maps they refer to.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    rules: Vec<Rule>,
    aliases: Vec<ValueMap>,
    pub fallback: Fallback,
    /// How many leading segments a gateway may put before the CRM's own
    /// path (an AWS API Gateway stage `/prod`, a Kong route prefix
    /// `/hubspot`, a Dynamics org): when no rule matches the whole path,
    /// the lookup is retried with up to this many leading segments dropped.
    pub base_segments: usize,
}

/// The default of [`RouteTable::base_segments`].
pub const DEFAULT_BASE_SEGMENTS: usize = 2;

/// The outcome of routing one path.
#[derive(Debug, PartialEq)]
pub struct Routed<'a> {
    pub resource: Option<Cow<'a, str>>,
    pub action: Option<Action>,
    pub endpoint: Option<&'a str>,
    /// Index of the matched rule (see [`RouteTable::template`]).
    pub rule: Option<usize>,
}

impl RouteTable {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Adds an alias map and returns its id for [`RouteTable::add_rule`].
    pub fn add_aliases(&mut self, map: ValueMap) -> usize {
        self.aliases.push(map);
        self.aliases.len() - 1
    }

    /// Compiles and appends one rule.
    pub fn add_rule(
        &mut self,
        template: &str,
        resource: Option<&str>,
        action: Option<Action>,
        aliases: Option<usize>,
    ) -> Result<(), String> {
        if !template.starts_with('/') {
            return Err(format!("route `{template}` must start with `/`"));
        }
        let mut segs = Vec::new();
        let parts: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
        let mut has_capture = false;
        for (i, p) in parts.iter().enumerate() {
            let seg = if *p == "**" {
                if i + 1 != parts.len() {
                    return Err(format!("route `{template}`: `**` must be the last segment"));
                }
                Seg::Rest
            } else if *p == "{resource}" {
                has_capture = true;
                Seg::Resource
            } else if p.starts_with('{') && p.ends_with('}') {
                Seg::Any
            } else if let Some((a, b)) = p.split_once('*') {
                if b.contains('*') {
                    return Err(format!("route `{template}`: one `*` per segment"));
                }
                Seg::Glob(a.into(), b.into())
            } else {
                Seg::Lit((*p).into())
            };
            segs.push(seg);
        }
        let resource = match resource {
            None if has_capture => RuleResource::Capture,
            None => RuleResource::None,
            Some("{soql}") => RuleResource::Soql,
            Some(r) if r.is_empty() || r.len() > 128 => {
                return Err(format!("route `{template}`: resource must be 1-128 bytes"))
            }
            Some(r) => RuleResource::Const(r.into()),
        };
        let rest = matches!(segs.last(), Some(Seg::Rest));
        self.rules.push(Rule {
            fixed: segs.len() - usize::from(rest),
            rest,
            segs,
            template: template.into(),
            resource,
            action,
            aliases,
        });
        Ok(())
    }

    /// Routes a URI (query string and scheme/host are ignored for matching;
    /// the query is still read for a SOQL `FROM`).
    pub fn route<'a>(&'a self, uri: &'a str) -> Option<Routed<'a>> {
        let path = strip_query(uri);
        // Split once for every rule, on the stack.
        let segs = Segments::split(path);
        for skip in 0..=self.base_segments.min(segs.len.saturating_sub(1)) {
            if let Some(r) = self.route_from(uri, &segs, skip) {
                return Some(r);
            }
        }
        match self.fallback {
            Fallback::Reject => None,
            Fallback::FirstSegment => first_segment(path).map(|s| Routed {
                resource: Some(lower(Cow::Borrowed(s))),
                action: None,
                endpoint: None,
                rule: None,
            }),
        }
    }

    /// The first rule matching the path without its `skip` leading segments.
    fn route_from<'a>(
        &'a self,
        uri: &'a str,
        segs: &Segments<'a>,
        skip: usize,
    ) -> Option<Routed<'a>> {
        let len = segs.len - skip;
        for (idx, rule) in self.rules.iter().enumerate() {
            let fits = if rule.rest {
                len >= rule.fixed
            } else {
                len == rule.fixed && !segs.more
            };
            if !fits {
                continue;
            }
            if let Some(cap) = matches(&rule.segs, segs, skip) {
                let resource = match &rule.resource {
                    // A capture that is itself a template placeholder
                    // (`{objectType}`, as in an AWS API Gateway
                    // `resourcePath`) names no resource: the rule matched,
                    // so no later, looser rule is tried, and the path is
                    // unmapped.
                    RuleResource::Capture => cap
                        .filter(|c| !(c.starts_with('{') && c.ends_with('}')))
                        .map(|c| self.resource_name(c, rule.aliases)),
                    RuleResource::Const(c) => Some(Cow::Borrowed(&**c)),
                    RuleResource::Soql => {
                        soql_from(uri).map(|c| self.resource_name(c, rule.aliases))
                    }
                    RuleResource::None => None,
                };
                return Some(Routed {
                    resource,
                    action: rule.action,
                    endpoint: Some(&rule.template),
                    rule: Some(idx),
                });
            }
        }
        None
    }

    /// The template of rule `idx` (the `endpoint` of its matches).
    pub fn template(&self, idx: usize) -> Option<&str> {
        self.rules.get(idx).map(|r| &*r.template)
    }

    fn resource_name<'a>(&'a self, raw: &'a str, aliases: Option<usize>) -> Cow<'a, str> {
        // OData keys: `accounts(00000000-…)` → `accounts`.
        // A byte loop: names are short, a search call costs more here.
        let raw = raw
            .bytes()
            .position(|c| c == b'(')
            .and_then(|i| raw.get(..i))
            .unwrap_or(raw);
        if let Some(map) = aliases.and_then(|i| self.aliases.get(i)) {
            if let Some(v) = map.get(raw) {
                return Cow::Borrowed(v);
            }
        }
        lower(Cow::Borrowed(raw))
    }
}

fn is_versionish(s: &str) -> bool {
    let b = s.as_bytes();
    let v = b.first() == Some(&b'v') && b.len() > 1 && b[1].is_ascii_digit();
    v || b.first().is_some_and(u8::is_ascii_digit)
}

fn first_segment(path: &str) -> Option<&str> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .find(|s| !matches!(*s, "api" | "rest" | "services" | "data") && !is_versionish(s))
}

/// Most path segments held for matching; a longer path still matches a
/// rule ending in `**` whose other segments are among the first ones.
const MAX_SEGMENTS: usize = 24;

/// The non-empty segments of a path, split once per route lookup.
struct Segments<'p> {
    segs: [&'p str; MAX_SEGMENTS],
    len: usize,
    /// The path has more segments than `segs` holds.
    more: bool,
}

impl<'p> Segments<'p> {
    fn split(path: &'p str) -> Self {
        let mut s = Segments {
            segs: [""; MAX_SEGMENTS],
            len: 0,
            more: false,
        };
        // A byte loop, not `str::split`: segments are short, and a search
        // call per segment cost more than the scan (perf, BENCHMARKS.md).
        let b = path.as_bytes();
        let mut start = 0;
        for i in 0..=b.len() {
            if i < b.len() && b[i] != b'/' {
                continue;
            }
            if i > start {
                if s.len == MAX_SEGMENTS {
                    s.more = true;
                    break;
                }
                // `/` is ASCII, so both ends are character boundaries.
                s.segs[s.len] = &path[start..i];
                s.len += 1;
            }
            start = i + 1;
        }
        s
    }
}

/// Segment-wise match of the path without its `skip` leading segments;
/// returns the `{resource}` capture (if the rule has one).
fn matches<'p>(segs: &[Seg], path: &Segments<'p>, skip: usize) -> Option<Option<&'p str>> {
    let path_segs = &path.segs[skip..path.len];
    let mut cap = None;
    let mut i = 0;
    for seg in segs {
        if let Seg::Rest = seg {
            return Some(cap);
        }
        let s = *path_segs.get(i)?;
        i += 1;
        match seg {
            Seg::Lit(l) => {
                if !short_eq(l, s) {
                    return None;
                }
            }
            Seg::Any => {}
            Seg::Resource => cap = Some(s),
            Seg::Glob(a, b) => {
                // Inline compares: `starts_with`/`ends_with` call `memcmp`,
                // even for the empty suffix of `v*` (perf: 5% of a Kong decode).
                let (sb, a, b) = (s.as_bytes(), a.as_bytes(), b.as_bytes());
                let fits = sb.len() >= a.len() + b.len()
                    && sb.get(..a.len()).is_some_and(|p| bytes_eq(p, a))
                    && sb.get(sb.len() - b.len()..).is_some_and(|q| bytes_eq(q, b));
                if !fits {
                    return None;
                }
            }
            Seg::Rest => {}
        }
    }
    (i == path_segs.len() && !path.more).then_some(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let mut t = RouteTable::default();
        let hs = t.add_aliases(ValueMap::from_iter([("0-1".into(), "contacts".into())]));
        t.add_rule(
            "/crm/v*/objects/{resource}/batch/archive",
            None,
            Some(Action::Delete),
            Some(hs),
        )
        .unwrap();
        t.add_rule("/crm/v*/objects/{resource}/{id}", None, None, Some(hs))
            .unwrap();
        t.add_rule("/crm/v*/objects/{resource}", None, None, Some(hs))
            .unwrap();
        t.add_rule(
            "/services/data/v*/query/**",
            Some("{soql}"),
            Some(Action::Read),
            None,
        )
        .unwrap();
        t.add_rule(
            "/services/data/v*/query",
            Some("{soql}"),
            Some(Action::Read),
            None,
        )
        .unwrap();
        t.add_rule("/api/data/v*/$batch", None, None, None).unwrap();
        t.add_rule("/api/data/v*/{resource}/**", None, None, None)
            .unwrap();
        t
    }

    #[test]
    fn first_matching_rule_gives_resource_action_and_template() {
        let t = table();
        let r = t.route("/crm/v3/objects/0-1/batch/archive").unwrap();
        assert_eq!(r.resource.as_deref(), Some("contacts"));
        assert_eq!(r.action, Some(Action::Delete));
        assert_eq!(r.endpoint, Some("/crm/v*/objects/{resource}/batch/archive"));
        let r = t.route("/crm/v3/objects/deals/123?archived=false").unwrap();
        assert!(matches!(r.resource, Some(Cow::Borrowed("deals"))));
        assert_eq!(r.action, None);
        let r = t
            .route("/services/data/v61.0/query?q=SELECT+Id+FROM+Contact")
            .unwrap();
        assert_eq!(r.resource.as_deref(), Some("contact"));
        let r = t.route("https://org.crm.dynamics.com/api/data/v9.2/accounts(00000000-0000-0000-0000-000000000001)").unwrap();
        assert_eq!(r.resource.as_deref(), Some("accounts"));
        assert_eq!(t.route("/api/data/v9.2/$batch").unwrap().resource, None);
        assert!(t.route("/health").is_none());
        assert!(t.route("/crm/v3/objects").is_none());
        assert!(t.route("/crm/v3/objects/a/b/c/d").is_none());
    }

    #[test]
    fn a_gateway_base_path_of_up_to_base_segments_is_looked_past() {
        let mut t = table();
        // Without base segments, an API Gateway stage hides the CRM path.
        assert!(t.route("/prod/crm/v3/objects/deals/7").is_none());
        t.base_segments = 2;
        let r = t.route("/prod/crm/v3/objects/deals/7").unwrap();
        assert_eq!(r.resource.as_deref(), Some("deals"));
        assert_eq!(r.endpoint, Some("/crm/v*/objects/{resource}/{id}"));
        let r = t.route("/hubspot/prod/crm/v3/objects/0-1").unwrap();
        assert_eq!(r.resource.as_deref(), Some("contacts"));
        let r = t.route("/org1/api/data/v9.2/accounts(1)").unwrap();
        assert_eq!(r.resource.as_deref(), Some("accounts"));
        // A whole-path match wins over a shorter one.
        let r = t.route("/crm/v3/objects/deals/batch/archive").unwrap();
        assert_eq!(r.action, Some(Action::Delete));
        // Three leading segments are more than allowed.
        assert!(t.route("/a/b/c/crm/v3/objects/deals").is_none());
        assert!(t.route("/prod/health").is_none());
    }

    #[test]
    fn a_template_placeholder_names_no_resource() {
        // AWS API Gateway's `resourcePath` is the template, not the path.
        let t = table();
        let r = t.route("/crm/v3/objects/{objectType}").unwrap();
        assert_eq!(r.resource, None);
        let r = t.route("/crm/v3/objects/{objectType}/{id}").unwrap();
        assert_eq!(r.resource, None);
        let r = t.route("/crm/v3/objects/contacts/{contactId}").unwrap();
        assert_eq!(r.resource.as_deref(), Some("contacts"));
    }

    #[test]
    fn paths_longer_than_the_split_buffer_match_only_rest_rules() {
        let t = table();
        let long = format!("/api/data/v9.2/accounts{}", "/x".repeat(MAX_SEGMENTS));
        let r = t.route(&long).unwrap();
        assert_eq!(r.resource.as_deref(), Some("accounts"));
        let long = format!("/crm/v3/objects/deals{}", "/x".repeat(MAX_SEGMENTS));
        assert!(t.route(&long).is_none());
        let exact: String = (0..MAX_SEGMENTS).map(|_| "/x").collect();
        assert!(t.route(&exact).is_none());
    }

    #[test]
    fn first_segment_fallback_skips_api_and_versions() {
        let mut t = table();
        t.fallback = Fallback::FirstSegment;
        assert_eq!(
            t.route("/api/v1/Locations/7").unwrap().resource.as_deref(),
            Some("locations")
        );
        assert!(t.route("/v1/").is_none());
    }

    #[test]
    fn bad_templates_are_refused() {
        let mut t = RouteTable::default();
        assert!(t.add_rule("crm/x", None, None, None).is_err());
        assert!(t.add_rule("/a/**/b", None, None, None).is_err());
        assert!(t.add_rule("/a/*b*", None, None, None).is_err());
    }
}
