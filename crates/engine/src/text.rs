//! Safe text for humans: strings that came from input (ids, resources,
//! principals — chosen by whoever holds a leaked key) rendered so they cannot
//! drive a terminal, break a table or look like something they are not.
//!
//! [`Safe`] is a `Display` wrapper over `&str`: control characters (ANSI
//! `ESC[2J`, OSC titles, CR, backspace, NUL, newlines), bidi overrides and
//! isolates, zero-width and other invisible characters are written as
//! `\u{…}`; the length is capped in characters with an ellipsis. Clean text
//! is written as is, without allocating. The rendering is idempotent (its
//! output is clean and within the cap), so text escaped once and rendered
//! again does not grow.
//!
//! [`Safe::markdown`] also keeps a table row intact (`|` escaped) and
//! neutralises inline HTML (`<`, `>`, `&`).

use std::fmt::{self, Write as _};

/// Default cap, in characters, for an id or other short field.
pub const MAX_FIELD_CHARS: usize = 128;
/// Default cap for a sentence built around such fields (an alert summary).
pub const MAX_SUMMARY_CHARS: usize = 1024;

/// How [`Safe`] renders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Plain,
    Markdown,
}

/// Escaping display of untrusted text. See the module docs.
#[derive(Clone, Copy, Debug)]
pub struct Safe<'a> {
    text: &'a str,
    max_chars: usize,
    mode: Mode,
}

/// `Safe` with the field cap ([`MAX_FIELD_CHARS`]).
pub fn safe(text: &str) -> Safe<'_> {
    Safe::new(text, MAX_FIELD_CHARS)
}

impl<'a> Safe<'a> {
    /// At most `max_chars` characters are shown (an ellipsis included).
    pub fn new(text: &'a str, max_chars: usize) -> Self {
        Safe {
            text,
            max_chars: max_chars.max(1),
            mode: Mode::Plain,
        }
    }

    /// For a markdown table cell or inline text: also escapes `|`, `<`, `>`, `&`
    /// and backticks.
    pub fn markdown(mut self) -> Self {
        self.mode = Mode::Markdown;
        self
    }

    /// Whether the text is written unchanged (nothing to escape, within
    /// the cap).
    pub fn is_clean(&self) -> bool {
        let mut n = 0;
        for c in self.text.chars() {
            n += 1;
            if n > self.max_chars
                || needs_escape(c)
                || (self.mode == Mode::Markdown && md_special(c))
            {
                return false;
            }
        }
        true
    }
}

/// Whether `c` is written as `\u{…}`: controls (C0, DEL, C1), bidi
/// embeddings/overrides/isolates and marks, zero-width and other invisible
/// or format characters, line/paragraph separators, tag characters,
/// variation selectors, private-use and unassigned-looking specials.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}'            // soft hyphen
            | '\u{034F}'          // combining grapheme joiner
            | '\u{061C}'          // arabic letter mark
            | '\u{115F}' | '\u{1160}' // hangul fillers
            | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}' // mongolian selectors / vowel separator
            | '\u{200B}'..='\u{200F}' // zero-width space/joiners, LRM, RLM
            | '\u{2028}'..='\u{202E}' // line/para separators, bidi embeddings & overrides
            | '\u{2060}'..='\u{206F}' // word joiner, invisible operators, bidi isolates
            | '\u{3164}'          // hangul filler
            | '\u{FE00}'..='\u{FE0F}' // variation selectors
            | '\u{FEFF}'          // BOM / zero-width no-break space
            | '\u{FFA0}'          // halfwidth hangul filler
            | '\u{FFF0}'..='\u{FFFB}' // specials, interlinear annotation
            | '\u{E000}'..='\u{F8FF}' // private use
            | '\u{E0000}'..='\u{E0FFF}' // tags, variation selectors supplement
            | '\u{F0000}'..='\u{10FFFF}' // supplementary private use
        )
}

/// Whether `text` contains anything [`needs_escape`] would escape.
pub fn has_invisible(text: &str) -> bool {
    text.chars().any(needs_escape)
}

fn md_special(c: char) -> bool {
    matches!(c, '|' | '<' | '>' | '&' | '`')
}

impl fmt::Display for Safe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            return f.write_str(self.text);
        }
        // Reserve one character for the ellipsis when cutting.
        let total = self.text.chars().count();
        let keep = if total > self.max_chars {
            self.max_chars - 1
        } else {
            total
        };
        // The cap counts rendered characters, so an escape costs its length.
        let mut budget = if total > self.max_chars {
            self.max_chars - 1
        } else {
            usize::MAX
        };
        let mut cut = false;
        for (i, c) in self.text.chars().enumerate() {
            if i >= keep {
                cut = true;
                break;
            }
            let escaped = needs_escape(c);
            let cost = if escaped {
                escaped_len(c)
            } else if self.mode == Mode::Markdown && md_special(c) {
                md_len(c)
            } else {
                1
            };
            if cost > budget {
                cut = true;
                break;
            }
            budget = budget.saturating_sub(cost);
            if escaped {
                write!(f, "\\u{{{:x}}}", c as u32)?;
            } else if self.mode == Mode::Markdown && md_special(c) {
                f.write_str(match c {
                    '|' => "\\|",
                    '<' => "&lt;",
                    '>' => "&gt;",
                    '&' => "&amp;",
                    _ => "\\`",
                })?;
            } else {
                f.write_char(c)?;
            }
        }
        if cut {
            f.write_char('…')?;
        }
        Ok(())
    }
}

fn escaped_len(c: char) -> usize {
    // `\u{` + hex digits + `}`
    let hex = (32 - (c as u32).leading_zeros()).div_ceil(4).max(1) as usize;
    hex + 4
}

fn md_len(c: char) -> usize {
    match c {
        '|' | '`' => 2,
        '&' => 5,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> String {
        safe(t).to_string()
    }

    #[test]
    fn clean_text_is_written_as_is() {
        assert_eq!(s("mailchimp-sync"), "mailchimp-sync");
        assert_eq!(s("Zoë Müller ✓ 日本"), "Zoë Müller ✓ 日本");
        assert!(safe("mailchimp-sync").is_clean());
    }

    #[test]
    fn terminal_controls_are_escaped() {
        assert_eq!(s("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(s("\u{1b}]0;pwned\u{7}x"), "\\u{1b}]0;pwned\\u{7}x");
        assert_eq!(s("ok\rEVIL"), "ok\\u{d}EVIL");
        assert_eq!(s("abc\u{8}\u{8}\u{8}xyz"), "abc\\u{8}\\u{8}\\u{8}xyz");
        assert_eq!(s("nul\0byte"), "nul\\u{0}byte");
        assert_eq!(s("two\nlines"), "two\\u{a}lines");
        assert_eq!(s("c1\u{9b}2J"), "c1\\u{9b}2J");
    }

    #[test]
    fn bidi_and_invisible_characters_are_escaped() {
        assert_eq!(s("abc\u{202e}fdp.exe"), "abc\\u{202e}fdp.exe");
        assert_eq!(s("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
        assert_eq!(s("mailchimp\u{200b}-sync"), "mailchimp\\u{200b}-sync");
        assert_eq!(
            s("a\u{feff}b\u{2060}c\u{ad}d"),
            "a\\u{feff}b\\u{2060}c\\u{ad}d"
        );
        assert_eq!(s("tag\u{e0041}"), "tag\\u{e0041}");
        assert!(has_invisible("mailchimp\u{200b}-sync"));
        assert!(!has_invisible("mailchimp-sync"));
    }

    #[test]
    fn length_is_capped_with_an_ellipsis() {
        let long = "x".repeat(500);
        let out = s(&long);
        assert_eq!(out.chars().count(), MAX_FIELD_CHARS);
        assert!(out.ends_with('…'));
        // Escapes count towards the cap.
        let out = Safe::new(&"\u{1b}".repeat(100), 20).to_string();
        assert!(out.chars().count() <= 20, "{out}");
        assert!(out.ends_with('…'));
        assert_eq!(Safe::new("abc", 3).to_string(), "abc");
        assert_eq!(Safe::new("abcd", 3).to_string(), "ab…");
    }

    #[test]
    fn markdown_keeps_rows_and_html_inert() {
        let md = |t: &str| safe(t).markdown().to_string();
        assert_eq!(md("a|b"), "a\\|b");
        assert_eq!(md("x\n| evil | row |"), "x\\u{a}\\| evil \\| row \\|");
        assert_eq!(md("<img src=x onerror=y>"), "&lt;img src=x onerror=y&gt;");
        assert_eq!(md("`code`"), "\\`code\\`");
        assert_eq!(md("plain"), "plain");
    }

    #[test]
    fn rendering_is_idempotent() {
        for t in [
            "a\u{1b}[2Jb\r\n\u{202e}\u{200b}",
            &"é\u{7}".repeat(300),
            "mailchimp-sync",
        ] {
            let once = s(t);
            assert_eq!(s(&once), once, "{t:?}");
        }
    }
}
