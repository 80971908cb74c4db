//! Grading a detector's alerts against the simulator's truth.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use tripline_engine::time::{format_rfc3339, MINUTE_MS};
use tripline_engine::{Alert, AlertKind};

use crate::{Incident, Truth};

/// An alert still counts for an incident this long after the incident ends.
pub const DETECTION_SLACK_MS: i64 = 15 * MINUTE_MS;

/// Recall for one kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KindScore {
    pub incidents: usize,
    pub detected: usize,
    /// detected / incidents (1.0 when there are no incidents).
    pub recall: f64,
}

/// Time from incident start to its first matching alert, over detected incidents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeToDetect {
    pub p50_ms: i64,
    pub p90_ms: i64,
    pub max_ms: i64,
}

/// Recall and time to detect for a group of incidents (a difficulty, a
/// detector family, or all of them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupScore {
    pub incidents: usize,
    pub detected: usize,
    /// detected / incidents (1.0 when there are no incidents).
    pub recall: f64,
    /// Over the detected incidents of the group.
    pub time_to_detect: TimeToDetect,
}

impl GroupScore {
    fn from_times(incidents: usize, mut times: Vec<i64>) -> Self {
        times.sort_unstable();
        GroupScore {
            incidents,
            detected: times.len(),
            recall: if incidents == 0 {
                1.0
            } else {
                times.len() as f64 / incidents as f64
            },
            time_to_detect: TimeToDetect {
                p50_ms: percentile(&times, 0.5),
                p90_ms: percentile(&times, 0.9),
                max_ms: times.last().copied().unwrap_or(0),
            },
        }
    }
}

/// The result of [`evaluate`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Per kind present in the truth or the alerts.
    pub per_kind: BTreeMap<String, KindScore>,
    /// Alerts matching an incident.
    pub true_alerts: usize,
    /// Alerts matching no incident but raised for an integration during one
    /// of its incident windows (secondary effects): not counted as false.
    pub collateral: usize,
    /// Alerts explained by nothing.
    pub false_alerts: usize,
    pub false_by_kind: BTreeMap<String, usize>,
    pub integration_days: u64,
    pub false_alerts_per_100_integration_days: f64,
    pub time_to_detect_ms: BTreeMap<String, TimeToDetect>,
    /// Per difficulty (`easy`, `moderate`, `hard`) present in the truth.
    pub per_difficulty: BTreeMap<String, GroupScore>,
    /// Per detector family (`learned`, `registry`) present in the truth.
    pub per_family: BTreeMap<String, GroupScore>,
    /// Every incident.
    pub overall: GroupScore,
    /// The false alerts themselves.
    pub unmatched: Vec<Alert>,
    pub missed: Vec<Incident>,
}

impl Evaluation {
    /// Incidents detected / incidents, over all kinds.
    pub fn overall_recall(&self) -> f64 {
        let (n, d) = self
            .per_kind
            .values()
            .fold((0, 0), |(n, d), k| (n + k.incidents, d + k.detected));
        if n == 0 {
            1.0
        } else {
            d as f64 / n as f64
        }
    }
}

fn in_window(inc: &Incident, t: i64) -> bool {
    t >= inc.start && t <= inc.end.saturating_add(DETECTION_SLACK_MS)
}

/// Whether `alert` is a detection of `inc`.
pub fn matches(inc: &Incident, alert: &Alert) -> bool {
    // Kinds must be equal; `revoked_credential` covers key and principal
    // incidents alike, which share the kind.
    inc.integration_id == alert.integration_id
        && inc.kind == alert.kind
        && in_window(inc, alert.detected_at)
}

fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Matches `alerts` against `truth`; see the crate docs for the rule.
pub fn evaluate(truth: &Truth, alerts: &[Alert]) -> Evaluation {
    let mut ev = Evaluation {
        integration_days: truth.integration_days,
        ..Evaluation::default()
    };
    let mut first: Vec<Option<i64>> = vec![None; truth.incidents.len()];
    // Incidents by integration, so each alert only looks at its own.
    let mut by_integ: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, inc) in truth.incidents.iter().enumerate() {
        by_integ
            .entry(inc.integration_id.as_str())
            .or_default()
            .push(i);
    }
    for a in alerts {
        let mine = by_integ
            .get(a.integration_id.as_str())
            .map_or(&[][..], Vec::as_slice);
        let mut hit = false;
        for &i in mine {
            if matches(&truth.incidents[i], a) {
                hit = true;
                first[i] = Some(first[i].map_or(a.detected_at, |f: i64| f.min(a.detected_at)));
            }
        }
        if hit {
            ev.true_alerts += 1;
        } else if mine
            .iter()
            .any(|&i| in_window(&truth.incidents[i], a.detected_at))
        {
            ev.collateral += 1;
        } else {
            ev.false_alerts += 1;
            *ev.false_by_kind
                .entry(a.kind.as_str().to_owned())
                .or_default() += 1;
            ev.unmatched.push(a.clone());
        }
    }
    let mut ttd: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut groups: BTreeMap<(u8, String), (usize, Vec<i64>)> = BTreeMap::new();
    for (inc, f) in truth.incidents.iter().zip(&first) {
        for key in [
            (0, inc.difficulty.as_str().to_owned()),
            (1, inc.family.as_str().to_owned()),
            (2, String::new()),
        ] {
            let g = groups.entry(key).or_default();
            g.0 += 1;
            if let Some(t) = f {
                g.1.push(t - inc.start);
            }
        }
        let s = ev.per_kind.entry(inc.kind.as_str().to_owned()).or_default();
        s.incidents += 1;
        match f {
            Some(t) => {
                s.detected += 1;
                ttd.entry(inc.kind.as_str().to_owned())
                    .or_default()
                    .push(t - inc.start);
            }
            None => ev.missed.push(inc.clone()),
        }
    }
    for s in ev.per_kind.values_mut() {
        s.recall = if s.incidents == 0 {
            1.0
        } else {
            s.detected as f64 / s.incidents as f64
        };
    }
    for (k, mut v) in ttd {
        v.sort_unstable();
        let t = TimeToDetect {
            p50_ms: percentile(&v, 0.5),
            p90_ms: percentile(&v, 0.9),
            max_ms: v.last().copied().unwrap_or(0),
        };
        ev.time_to_detect_ms.insert(k, t);
    }
    for ((which, name), (n, times)) in groups {
        let g = GroupScore::from_times(n, times);
        match which {
            0 => {
                ev.per_difficulty.insert(name, g);
            }
            1 => {
                ev.per_family.insert(name, g);
            }
            _ => ev.overall = g,
        }
    }
    ev.false_alerts_per_100_integration_days = if truth.integration_days == 0 {
        0.0
    } else {
        ev.false_alerts as f64 * 100.0 / truth.integration_days as f64
    };
    ev
}

fn secs(ms: i64) -> String {
    if ms < 60_000 {
        format!("{:.0}s", ms as f64 / 1000.0)
    } else {
        format!("{:.1}m", ms as f64 / 60_000.0)
    }
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<20} {:>9} {:>8} {:>7} {:>7} {:>8} {:>8} {:>8}",
            "kind", "incidents", "detected", "recall", "false", "ttd p50", "ttd p90", "ttd max"
        )?;
        for kind in AlertKind::ALL {
            let k = kind.as_str();
            let s = self.per_kind.get(k);
            let fa = self.false_by_kind.get(k).copied().unwrap_or(0);
            if s.is_none() && fa == 0 {
                continue;
            }
            let s = s.cloned().unwrap_or_default();
            let (p50, p90, max) = match self.time_to_detect_ms.get(k) {
                Some(t) => (secs(t.p50_ms), secs(t.p90_ms), secs(t.max_ms)),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let recall = if s.incidents == 0 {
                "-".to_owned()
            } else {
                format!("{:.0}%", s.recall * 100.0)
            };
            writeln!(
                f,
                "{k:<20} {:>9} {:>8} {recall:>7} {fa:>7} {p50:>8} {p90:>8} {max:>8}",
                s.incidents, s.detected
            )?;
        }
        writeln!(
            f,
            "{:<20} {:>9} {:>8} {:>7} {:>7} {:>8} {:>8} {:>8}",
            "group", "incidents", "detected", "recall", "", "ttd p50", "ttd p90", "ttd max"
        )?;
        let groups = self
            .per_difficulty
            .iter()
            .map(|(k, g)| (format!("difficulty {k}"), g))
            .chain(
                self.per_family
                    .iter()
                    .map(|(k, g)| (format!("family {k}"), g)),
            )
            .chain(std::iter::once(("all".to_owned(), &self.overall)));
        for (name, g) in groups {
            let t = &g.time_to_detect;
            writeln!(
                f,
                "{name:<20} {:>9} {:>8} {:>6.0}% {:>7} {:>8} {:>8} {:>8}",
                g.incidents,
                g.detected,
                g.recall * 100.0,
                "",
                secs(t.p50_ms),
                secs(t.p90_ms),
                secs(t.max_ms)
            )?;
        }
        writeln!(f, "overall recall {:.1}%", self.overall_recall() * 100.0)?;
        writeln!(
            f,
            "alerts: {} true, {} collateral, {} false ({:.2} per 100 integration-days over {} integration-days)",
            self.true_alerts, self.collateral, self.false_alerts, self.false_alerts_per_100_integration_days, self.integration_days
        )?;
        for m in &self.missed {
            writeln!(
                f,
                "missed {} {} {} {} at {}: {}",
                m.id,
                m.difficulty.as_str(),
                m.kind,
                m.integration_id,
                format_rfc3339(m.start),
                m.description
            )?;
        }
        for a in self.unmatched.iter().take(20) {
            writeln!(
                f,
                "false  {} {} at {}: {}",
                a.kind,
                a.integration_id,
                format_rfc3339(a.detected_at),
                a.summary
            )?;
        }
        if self.unmatched.len() > 20 {
            writeln!(f, "… and {} more false alerts", self.unmatched.len() - 20)?;
        }
        Ok(())
    }
}
