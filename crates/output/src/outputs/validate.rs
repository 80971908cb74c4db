//! Validation of `[[outputs]]` entries: every problem at once, secrets
//! resolved, never echoed.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Url;

use super::config::{AlertmanagerConfig, OutputConfig, ReceiverConfig};
use super::links::{Links, INTEGRATION_PLACEHOLDER};
use super::{alertmanager, pagerduty, slack, webhook, OutputKind, OutputSettings, SecretUrl};
use crate::secret::{self, Secret, SecretSource};

/// Longest `min_firing_seconds`: a resolution held longer than a day is a typo.
const MAX_AM_MIN_FIRING_SECONDS: u64 = 86_400;

/// Checks `raw` is an absolute http(s) URL, pushing a problem otherwise.
/// The message never includes the URL (it may hold a token).
fn parse_url(
    field: &str,
    raw: &str,
    allow_credentials: bool,
    problems: &mut Vec<String>,
) -> Option<Url> {
    match Url::parse(raw.trim()) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {
            if !allow_credentials && (!u.username().is_empty() || u.password().is_some()) {
                problems.push(format!(
                    "{field} must not embed credentials; use bearer_token_env/_file"
                ));
                return None;
            }
            Some(u)
        }
        Ok(_) => {
            problems.push(format!("{field} must be an http or https URL"));
            None
        }
        Err(e) => {
            problems.push(format!("{field} is not a valid URL: {e}"));
            None
        }
    }
}

fn bearer_header(
    token: Option<Secret>,
    field: &str,
    problems: &mut Vec<String>,
) -> Option<HeaderValue> {
    let token = token?;
    match HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
        Ok(mut v) => {
            v.set_sensitive(true);
            Some(v)
        }
        Err(_) => {
            problems.push(format!(
                "{field}: the token contains characters not allowed in a header"
            ));
            None
        }
    }
}

/// The optional `bearer_token_env`/`_file` of an entry, as an
/// `Authorization` header.
fn bearer_token(
    prefix: &str,
    env: Option<&str>,
    file: Option<&std::path::Path>,
    source: &dyn SecretSource,
    problems: &mut Vec<String>,
) -> Option<HeaderValue> {
    let field = format!("{prefix}.bearer_token");
    let token = secret::resolve(&field, env, file, false, source, problems);
    bearer_header(token, &field, problems)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Checks the runbook and dashboard URLs of an entry.
fn validate_links(prefix: &str, cfg: &OutputConfig, problems: &mut Vec<String>) -> Links {
    parse_url(
        &format!("{prefix}.runbook_url"),
        &cfg.runbook_url,
        false,
        problems,
    );
    if let Some(d) = &cfg.dashboard_url {
        let sample = d.replace(INTEGRATION_PLACEHOLDER, "x");
        parse_url(&format!("{prefix}.dashboard_url"), &sample, false, problems);
    }
    Links::new(&cfg.runbook_url, cfg.dashboard_url.as_deref())
}

/// Most Alertmanager replicas one `alertmanager` output may name.
const MAX_AM_URLS: usize = 16;

/// An `alertmanager` entry's outputs: one named `name` for `url`, or one per
/// replica for `urls`, named `name-0`, `name-1`, … (Alertmanager replicates
/// silences and its notification log between replicas, not alerts: a
/// client sends every alert to every replica, as Prometheus does).
fn alertmanager_outputs(
    prefix: &str,
    name: &str,
    c: &AlertmanagerConfig,
    source: &dyn SecretSource,
    links: &Links,
    problems: &mut Vec<String>,
) -> Vec<(String, OutputKind)> {
    let raw: Vec<(String, &str)> = match (&c.url, c.urls.as_slice()) {
        (Some(u), []) => vec![(name.to_owned(), u.as_str())],
        (None, []) => {
            problems.push(format!("{prefix}: set `url` (or `urls`, one per replica)"));
            return Vec::new();
        }
        (Some(_), _) => {
            problems.push(format!("{prefix}: set only one of `url` and `urls`"));
            return Vec::new();
        }
        (None, urls) => {
            if urls.len() > MAX_AM_URLS {
                problems.push(format!(
                    "{prefix}.urls: at most {MAX_AM_URLS} Alertmanager replicas"
                ));
            }
            let mut distinct = std::collections::HashSet::new();
            for u in urls {
                if !distinct.insert(u.trim()) {
                    problems.push(format!("{prefix}.urls: {u:?} is listed twice"));
                }
            }
            urls.iter()
                .enumerate()
                .map(|(i, u)| (format!("{name}-{i}"), u.as_str()))
                .collect()
        }
    };
    let endpoints: Vec<(String, Option<Url>)> = raw
        .into_iter()
        .enumerate()
        .map(|(i, (n, u))| {
            let field = if c.urls.is_empty() {
                format!("{prefix}.url")
            } else {
                format!("{prefix}.urls[{i}]")
            };
            let url = parse_url(&field, u, false, problems)
                .and_then(|u| alertmanager::alerts_endpoint(u, prefix, problems));
            (n, url)
        })
        .collect();
    let bearer = bearer_token(
        prefix,
        c.bearer_token_env.as_deref(),
        c.bearer_token_file.as_deref(),
        source,
        problems,
    );
    if c.repush_interval_seconds == 0 {
        problems.push(format!(
            "{prefix}.repush_interval_seconds must be at least 1"
        ));
    }
    if c.alert_ttl_seconds <= c.repush_interval_seconds {
        problems.push(format!(
            "{prefix}.alert_ttl_seconds must be greater than repush_interval_seconds, \
             or Alertmanager resolves open alerts between re-pushes"
        ));
    }
    if c.min_firing_seconds > MAX_AM_MIN_FIRING_SECONDS {
        problems.push(format!(
            "{prefix}.min_firing_seconds must be at most {MAX_AM_MIN_FIRING_SECONDS} \
             (one day)"
        ));
    }
    if c.max_open_alerts == 0 {
        problems.push(format!("{prefix}.max_open_alerts must be at least 1"));
    }
    for label in c.labels.keys() {
        if !alertmanager::valid_label_name(label)
            || alertmanager::RESERVED_LABELS.contains(&label.as_str())
        {
            problems.push(format!(
                "{prefix}.labels: {label:?} is not a valid label name or is reserved"
            ));
        }
    }
    if let Some(g) = &c.generator_url {
        parse_url(&format!("{prefix}.generator_url"), g, false, problems);
    }
    endpoints
        .into_iter()
        .filter_map(|(n, url)| {
            let am = alertmanager::Alertmanager::new(
                SecretUrl(url?),
                bearer.clone(),
                c.labels.clone(),
                c.generator_url.clone(),
                alertmanager::Timing {
                    repush_interval: Duration::from_secs(c.repush_interval_seconds.max(1)),
                    ttl: Duration::from_secs(c.alert_ttl_seconds),
                    min_firing: Duration::from_secs(c.min_firing_seconds),
                    max_open: c.max_open_alerts.max(1),
                },
                links.clone(),
            );
            Some((n, OutputKind::Alertmanager(am)))
        })
        .collect()
}

/// Validates every output entry and resolves its secrets from `source`.
/// Returns all problems at once, each prefixed with the entry it is about.
pub fn validate_outputs(
    configs: &[OutputConfig],
    source: &dyn SecretSource,
) -> Result<Vec<OutputSettings>, Vec<String>> {
    let mut problems = Vec::new();
    let mut settings = Vec::with_capacity(configs.len());
    let mut seen = std::collections::HashSet::new();
    for (i, cfg) in configs.iter().enumerate() {
        // Outputs an entry adds besides its own (one per Alertmanager replica).
        let mut extra = Vec::new();
        let name = cfg.name.as_str();
        let prefix = format!("outputs[{i}] ({name:?})");
        if !valid_name(name) {
            problems.push(format!(
                "{prefix}.name must be 1-64 characters of letters, digits, '_', '-' or '.'"
            ));
        }
        if !seen.insert(name.to_owned()) {
            problems.push(format!("{prefix}.name is used by another output"));
        }
        let links = validate_links(&prefix, cfg, &mut problems);
        let kind = match &cfg.receiver {
            ReceiverConfig::Webhook(c) => {
                let url = secret::resolve(
                    &format!("{prefix}.url"),
                    c.url_env.as_deref(),
                    c.url_file.as_deref(),
                    true,
                    source,
                    &mut problems,
                )
                .and_then(|s| parse_url(&format!("{prefix}.url"), s.expose(), true, &mut problems));
                let signing = secret::resolve(
                    &format!("{prefix}.signing_secret"),
                    c.signing_secret_env.as_deref(),
                    c.signing_secret_file.as_deref(),
                    false,
                    source,
                    &mut problems,
                )
                .map(|s| webhook::parse_signing_secrets(&prefix, &s, &mut problems))
                .unwrap_or_default();
                let legacy_key = secret::resolve(
                    &format!("{prefix}.hmac_key"),
                    c.hmac_key_env.as_deref(),
                    c.hmac_key_file.as_deref(),
                    c.legacy_signature,
                    source,
                    &mut problems,
                );
                if legacy_key.is_some() && !c.legacy_signature {
                    problems.push(format!(
                        "{prefix}.hmac_key is only used with legacy_signature = true; \
                         sign with signing_secret_env/_file (Standard Webhooks) instead"
                    ));
                }
                let bearer = bearer_token(
                    &prefix,
                    c.bearer_token_env.as_deref(),
                    c.bearer_token_file.as_deref(),
                    source,
                    &mut problems,
                );
                let headers = webhook::custom_headers(&prefix, &c.headers, &mut problems);
                url.map(|url| {
                    OutputKind::Webhook(webhook::Webhook::new(
                        SecretUrl(url),
                        webhook::Signing {
                            secrets: signing,
                            legacy_key: legacy_key.filter(|_| c.legacy_signature),
                        },
                        bearer,
                        headers,
                    ))
                })
            }
            ReceiverConfig::Alertmanager(c) => {
                // One output per replica (`urls`), each with its own queue.
                for (n, kind) in
                    alertmanager_outputs(&prefix, name, c, source, &links, &mut problems)
                {
                    if n != name && !seen.insert(n.clone()) {
                        problems.push(format!(
                            "{prefix}: output name {n:?} is used by another output"
                        ));
                    }
                    extra.push((n, kind));
                }
                None
            }
            ReceiverConfig::Pagerduty(c) => {
                let key = secret::resolve(
                    &format!("{prefix}.routing_key"),
                    c.routing_key_env.as_deref(),
                    c.routing_key_file.as_deref(),
                    true,
                    source,
                    &mut problems,
                );
                let url = parse_url(
                    &format!("{prefix}.events_url"),
                    &c.events_url,
                    false,
                    &mut problems,
                );
                match (url, key) {
                    (Some(url), Some(key)) => Some(OutputKind::PagerDuty(
                        pagerduty::PagerDuty::new(SecretUrl(url), key, links.clone()),
                    )),
                    _ => None,
                }
            }
            ReceiverConfig::Slack(c) => {
                let field = format!("{prefix}.webhook_url");
                let url = secret::resolve(
                    &field,
                    c.webhook_url_env.as_deref(),
                    c.webhook_url_file.as_deref(),
                    true,
                    source,
                    &mut problems,
                )
                .and_then(|s| parse_url(&field, s.expose(), true, &mut problems));
                url.map(|u| {
                    OutputKind::Slack(slack::Slack::new(
                        SecretUrl(u),
                        c.send_resolved,
                        links.clone(),
                    ))
                })
            }
        };
        let delivery = cfg.delivery.validate(&prefix, &mut problems);
        if let ReceiverConfig::Alertmanager(c) = &cfg.receiver {
            // A held resolution older than max_age would be dropped as expired.
            if Duration::from_secs(c.min_firing_seconds) >= delivery.max_age {
                problems.push(format!(
                    "{prefix}.min_firing_seconds must be less than delivery.max_age_seconds"
                ));
            }
        }
        cfg.grouping.validate(&prefix, &mut problems);
        let named = kind.map(|k| (name.to_owned(), k)).into_iter();
        for (name, kind) in named.chain(extra) {
            settings.push(OutputSettings {
                name,
                delivery: delivery.clone(),
                grouping: cfg.grouping.clone(),
                min_severity: cfg.min_severity,
                kind,
            });
        }
    }
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(problems)
    }
}

/// Parses custom header pairs, pushing a problem for each invalid or reserved one.
pub(crate) fn parse_headers(
    prefix: &str,
    raw: &BTreeMap<String, String>,
    reserved: &[&str],
    problems: &mut Vec<String>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for (k, v) in raw {
        let Ok(name) = HeaderName::from_bytes(k.as_bytes()) else {
            problems.push(format!(
                "{prefix}.headers: {k:?} is not a valid header name"
            ));
            continue;
        };
        let lower = name.as_str();
        if reserved.iter().any(|r| {
            lower == *r || (r.ends_with('*') && lower.starts_with(r.trim_end_matches('*')))
        }) {
            problems.push(format!("{prefix}.headers: {k:?} is reserved"));
            continue;
        }
        match HeaderValue::from_str(v) {
            Ok(val) => out.push((name, val)),
            Err(_) => problems.push(format!(
                "{prefix}.headers: the value of {k:?} is not a valid header value"
            )),
        }
    }
    out
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
