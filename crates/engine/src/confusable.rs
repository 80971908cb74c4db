//! Look-alike ids: the *skeleton* of an id (Unicode TR39, section 4
//! "Confusable Detection"), so an unregistered integration id that a person
//! would read as a registered one — `mailchimp\u{200b}-sync` (zero-width
//! space), `mаilchimp-sync` (Cyrillic `а`), `ｍailchimp-sync` (fullwidth),
//! `MailChimp-Sync`, `mai1chimp-sync`, `mailchimp-sync` with `rn` for `m` —
//! is reported as imitating it.
//!
//! [`skeletons`] are TR39's skeleton (NFD, default-ignorable code points
//! dropped, every character replaced by its confusables prototype) extended
//! for ids, where case and accents carry no identity a reader relies on:
//! controls and the invisible characters [`crate::text::needs_escape`]
//! escapes are dropped, combining marks are dropped (`é` reads as `e`), and
//! the result is lower-cased and mapped again, so `I`, `l`, `1` and `|` are
//! one letter, and so are `O`, `o` and `0`.
//!
//! The registry computes the skeleton of every registered id once, at load
//! ([`crate::Registry::imitated`]); checking an unknown id is then one
//! skeleton (linear in its length) and one hash look-up.

use crate::text::needs_escape;

/// Combining marks (diacritics) that NFD splits off a letter.
fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}')
}

fn keep(c: char) -> bool {
    !needs_escape(c) && !is_combining_mark(c)
}

/// TR39's skeleton with invisible characters and marks dropped, lower-cased.
fn pass(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in unicode_security::skeleton(s).filter(|&c| keep(c)) {
        out.extend(c.to_lowercase());
    }
    out
}

/// Twice, because lower-casing can produce letters with prototypes of their
/// own (`M` → `m` → `rn`).
fn fold(s: &str) -> String {
    let once = pass(s);
    // The second pass over a lower-case ASCII result is the ASCII mapping.
    match ascii_skeletons(&once) {
        Some([fast, _]) => fast,
        None => pass(&once),
    }
}

/// The look-alike skeletons of `id`: two ids read the same to a person when
/// they share one. Two, because an upper-case `I` is both the capital of `i`
/// (`MAILCHIMP`) and a look-alike of `l` (`maiIchimp`): the first skeleton
/// maps characters before folding case, the second after. Equal for an id
/// without upper-case letters. See the module docs.
pub fn skeletons(id: &str) -> [String; 2] {
    if let Some(fast) = ascii_skeletons(id) {
        return fast;
    }
    let lower = id.to_lowercase();
    let first = fold(id);
    let second = if lower == id {
        first.clone()
    } else {
        fold(&lower)
    };
    [first, second]
}

/// The same skeletons for a plain ASCII id without the Unicode tables (ids
/// are ASCII almost always; registry load computes one per id). TR39's
/// prototypes of ASCII characters: `0` → `O`, `1` `I` `|` → `l`, `m` →
/// `rn`, `"` → `''`, `` ` `` → `'` (and `%`, whose prototype is not ASCII:
/// left to the general path).
fn ascii_skeletons(id: &str) -> Option<[String; 2]> {
    if !id.is_ascii() || id.contains('%') {
        return None;
    }
    let one = |capital_i: &str| {
        let mut out = String::with_capacity(id.len() + 4);
        for b in id.bytes() {
            match b {
                b'0' | b'O' | b'o' => out.push('o'),
                b'1' | b'|' | b'l' | b'L' => out.push('l'),
                b'I' => out.push_str(capital_i),
                b'm' | b'M' => out.push_str("rn"),
                b'"' => out.push_str("''"),
                b'`' => out.push('\''),
                b if b.is_ascii_control() => {}
                b => out.push(char::from(b.to_ascii_lowercase())),
            }
        }
        out
    };
    Some([one("l"), one("i")])
}

/// Whether `a` and `b` read the same (a shared skeleton) without being equal.
pub fn confusable(a: &str, b: &str) -> bool {
    if a == b {
        return false;
    }
    let (sa, sb) = (skeletons(a), skeletons(b));
    sa.iter().any(|x| !x.is_empty() && sb.contains(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_of_a_registered_id_share_its_skeleton() {
        let real = "mailchimp-sync";
        for fake in [
            "mailchimp\u{200b}-sync", // zero-width space
            "mail\u{200d}chimp-sync", // zero-width joiner
            "\u{feff}mailchimp-sync", // BOM / ZWNBSP
            "m\u{0430}ilchimp-sync",  // Cyrillic а
            "mailchimp-\u{0455}ync",  // Cyrillic ѕ
            "mailchim\u{0440}-sync",  // Cyrillic р
            "mailchimp-sync\u{2060}", // word joiner
            "ma\u{03b9}lchimp-sync",  // Greek iota
            "mailch\u{0456}mp-sync",  // Cyrillic і
            "mailchimp-syn\u{03f2}",  // Greek lunate sigma
            "\u{ff4d}ailchimp-sync",  // fullwidth m
            "\u{ff4d}\u{ff41}\u{ff49}lchimp-sync",
            "MailChimp-Sync", // case
            "MAILCHIMP-SYNC",
            "mai1chimp-sync",         // 1 for l
            "maiIchimp-sync",         // capital I for l
            "mailchirnp-sync",        // rn for m
            "mailchímp-sync",         // accent
            "mailchi\u{0301}mp-sync", // combining accent
        ] {
            assert!(confusable(fake, real), "{fake:?}: {:?}", skeletons(fake));
        }
        assert!(confusable("hubspot-0", "hubspot-o"));
        assert!(confusable("app-1", "app-l"));
        assert!(confusable("APP-1", "app-l"));
    }

    #[test]
    fn different_ids_keep_different_skeletons() {
        for other in [
            "mailchimp-sync2",
            "mailchimp_sync",
            "mailchimp-sink",
            "hubspot-sync",
            "mailchimp-sync\u{1b}[0m",
            "",
        ] {
            assert!(!confusable(other, "mailchimp-sync"), "{other:?}");
        }
        assert!(!confusable("mailchimp-sync", "mailchimp-sync"));
    }

    /// The ASCII fast path computes exactly what the Unicode path does.
    #[test]
    fn ascii_fast_path_matches_the_tables() {
        let mut ids: Vec<String> = [
            "mailchimp-sync",
            "MailChimp-Sync",
            "MAILCHIMP",
            "mai1chimp",
            "maiIchimp",
            "a|b",
            "x\"y`z",
            "hub\u{1b}[2Jspot",
            "nul\0",
            "0oO1lIiLM",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Every printable and control ASCII character, alone and in context.
        for b in 0u8..128 {
            let c = char::from(b);
            ids.push(c.to_string());
            ids.push(format!("aI{c}mO"));
        }
        for id in ids.iter().filter(|id| !id.contains('%')) {
            let slow = [pass(&pass(id)), pass(&pass(&id.to_lowercase()))];
            assert_eq!(ascii_skeletons(id), Some(slow), "{id:?}");
        }
        assert_eq!(ascii_skeletons("50%"), None);
        assert_eq!(ascii_skeletons("é"), None);
    }

    #[test]
    fn skeletons_are_stable_under_themselves() {
        for id in [
            "MailChimp-Sync",
            "m\u{0430}il\u{200b}",
            "ｍ０Ｏ",
            "x\u{1b}[2J",
        ] {
            for s in skeletons(id) {
                assert_eq!(skeletons(&s), [s.clone(), s.clone()], "{id:?}");
            }
        }
    }

    fn unknown_alert(id: &str) -> crate::Alert {
        use crate::registry::IntegrationDecl;
        use crate::{Action, Engine, EngineConfig, Event, Outputs, Registry};
        let reg = Registry::new(
            vec![
                IntegrationDecl::new("mailchimp-sync"),
                IntegrationDecl::new("hubspot"),
            ],
            vec![],
            vec![],
        );
        let mut engine = Engine::new(EngineConfig::default(), Some(reg));
        let mut out = Outputs::default();
        engine.process(
            &Event::new(1_764_424_992_345, id, "contacts", Action::Read),
            &mut out,
        );
        let mut unknown: Vec<_> = out
            .alerts
            .into_iter()
            .filter(|a| a.kind == crate::AlertKind::UnknownIntegration)
            .collect();
        assert_eq!(unknown.len(), 1, "{id:?}");
        unknown.remove(0)
    }

    #[test]
    fn an_unknown_look_alike_names_the_registered_id_it_imitates() {
        let a = unknown_alert("mailchimp\u{200b}-sync");
        assert_eq!(a.evidence["imitates"], "mailchimp-sync".into());
        assert_eq!(a.evidence["invisible_characters"], 1u64.into());
        assert!(
            a.summary.ends_with(
                "; it looks like registered integration mailchimp-sync (1 invisible character)"
            ),
            "{}",
            a.summary
        );
        assert_eq!(a.score, 0.95);
        let a = unknown_alert("Hub\u{0405}P0t");
        assert_eq!(a.evidence["imitates"], "hubspot".into());
        assert!(!a.evidence.contains_key("invisible_characters"));
        let a = unknown_alert("zendesk\u{202e}");
        assert!(!a.evidence.contains_key("imitates"));
        assert_eq!(a.evidence["invisible_characters"], 1u64.into());
        assert!(
            a.summary.ends_with("; its id has 1 invisible character"),
            "{}",
            a.summary
        );
        let a = unknown_alert("zendesk");
        assert!(!a.evidence.contains_key("imitates"));
        assert!(!a.evidence.contains_key("invisible_characters"));
        assert!(
            a.summary.ends_with("it is not in the registry"),
            "{}",
            a.summary
        );
        assert_eq!(a.score, 0.8);
    }
}
