//! Alerts as people see them: a copy of an alert whose input strings
//! (`integration_id`, `key_id`, `resource`, evidence strings) are rendered
//! with [`Safe`] (control, bidi and invisible characters as `\u{…}`, each at
//! most [`MAX_FIELD_CHARS`]), for receivers that display every field — the
//! PagerDuty incident page shows `custom_details` as is. The summary is
//! escaped by the alert's own serializer. Machine receivers (webhooks, the
//! alerts topic) get the alert exact.

use std::borrow::Cow;

use tripline_engine::text::{Safe, MAX_FIELD_CHARS};
use tripline_engine::{Alert, EvidenceValue};

fn field(s: &str) -> Safe<'_> {
    Safe::new(s, MAX_FIELD_CHARS)
}

fn clean(s: &str) -> bool {
    field(s).is_clean()
}

fn escaped(s: &str) -> String {
    field(s).to_string()
}

fn evidence_clean(v: &EvidenceValue) -> bool {
    match v {
        EvidenceValue::Str(s) => clean(s),
        EvidenceValue::List(l) => l.iter().all(|s| clean(s)),
        _ => true,
    }
}

/// `a` itself when every input string in it is clean, else an escaped copy.
pub(crate) fn for_humans(a: &Alert) -> Cow<'_, Alert> {
    let all_clean = clean(&a.integration_id)
        && a.key_id.as_deref().is_none_or(clean)
        && a.resource.as_deref().is_none_or(clean)
        && a.evidence
            .iter()
            .all(|(k, v)| clean(k) && evidence_clean(v));
    if all_clean {
        return Cow::Borrowed(a);
    }
    let mut c = a.clone();
    c.integration_id = escaped(&a.integration_id);
    c.key_id = a.key_id.as_deref().map(escaped);
    c.resource = a.resource.as_deref().map(escaped);
    c.evidence = a
        .evidence
        .iter()
        .map(|(k, v)| {
            let v = match v {
                EvidenceValue::Str(s) => EvidenceValue::Str(escaped(s)),
                EvidenceValue::List(l) => {
                    EvidenceValue::List(l.iter().map(|s| escaped(s)).collect())
                }
                other => other.clone(),
            };
            (escaped(k), v)
        })
        .collect();
    Cow::Owned(c)
}
