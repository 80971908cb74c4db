//! The walker against the serde walk: fixed documents and a differential
//! proptest.

use proptest::prelude::*;

use super::super::empty_slots;
use super::super::tests::trie;
use super::*;

/// Both walks over one document: the fast one's slots when it accepts.
fn both<'a>(t: &Trie, doc: &'a str) -> (Option<Slots<'a>>, Result<Slots<'a>, String>) {
    let mut fast = empty_slots();
    let fast = extract(t, doc, &mut fast).ok().map(|()| fast);
    let mut slow = empty_slots();
    let slow = t
        .extract_serde(doc, &mut slow)
        .map(|()| slow)
        .map_err(|e| e.to_string());
    (fast, slow)
}

#[test]
fn a_kong_record_walks_without_declining_and_matches_serde() {
    let t = trie(&[
        "/authenticated_entity/id",
        "/consumer/username",
        "/request/method",
        "/request/uri",
        "/response/status",
        "/response/size",
        "/started_at",
        "/latencies/request",
        "/client_ip",
    ]);
    let doc = r#"{"authenticated_entity":{"consumer_id":"0000","id":"key_d45d23"},"client_ip":"100.64.10.165","consumer":{"id":"0000","username":"openai-enrich"},"latencies":{"kong":1,"proxy":40,"request":41.5},"request":{"headers":{"authorization":"REDACTED","user-agent":"a \"quoted\" agent\/1.0"},"method":"GET","size":312,"uri":"/crm/v3/objects/companies?limit=100"},"response":{"headers":{"x-records":"1"},"size":1094,"status":200},"route":{"name":"r","paths":["/crm/v3/objects"],"n":[-1,0,2.25,true,false,null,{}]},"service":{"name":"hubspot"},"started_at":1792972804229,"workspace_name":"default"}"#;
    let (fast, slow) = both(&t, doc);
    let fast = fast.expect("the walker reads a plain Kong record");
    assert_eq!(fast, slow.unwrap());
    assert_eq!(fast[0], Val::Str(Cow::Borrowed("key_d45d23")));
    assert_eq!(fast[4], Val::UInt(200));
    assert_eq!(fast[7], Val::Float(41.5));
}

#[test]
fn the_string_scan_stops_at_the_first_quote_backslash_or_control_byte() {
    for (text, want) in [
        ("abc\"", Some(3)),
        ("abcdefghijklmnop\"", Some(16)),
        ("abcdefg\\h\"", Some(7)),
        ("ab\tcdefghij\"", Some(2)),
        ("ééééé\u{7f}\"", Some(11)),
        ("abcdefgh", None),
        ("", None),
    ] {
        assert_eq!(stop(text.as_bytes(), 0), want, "{text:?}");
    }
    assert_eq!(stop(b"\"abcdefghij\"", 1), Some(11));
    for n in 0..40 {
        let mut s = "x".repeat(n);
        s.push('"');
        s.push_str("yyyyyyyy\\");
        assert_eq!(stop(s.as_bytes(), 0), Some(n));
    }
}

#[test]
fn keys_of_every_length_match_by_head_word_and_tail() {
    // Keys shorter than, exactly and longer than the eight-byte head, keys
    // sharing a head, and a document ending right after a short key.
    let t = trie(&[
        "/ab",
        "/abcdefgh",
        "/abcdefghi",
        "/abcdefghij",
        "/workspace_name",
    ]);
    let doc = r#"{"abcdefghij":4,"abcdefghi":3,"abcdefgh":2,"ab":1,"abcdefghx":9,"workspace_nam":8,"workspace_name":"w"}"#;
    let (fast, slow) = both(&t, doc);
    let fast = fast.expect("plain keys walk");
    assert_eq!(fast, slow.unwrap());
    assert_eq!(
        fast[..5],
        [
            Val::UInt(1),
            Val::UInt(2),
            Val::UInt(3),
            Val::UInt(4),
            Val::Str(Cow::Borrowed("w"))
        ]
    );
    for doc in [
        r#"{"ab":1}"#,
        r#"{"a":1}"#,
        r#"{"ab""#,
        r#"{"abcdefghi":{}}"#,
    ] {
        let (fast, slow) = both(&t, doc);
        if let Some(fast) = fast {
            assert_eq!(Ok(fast), slow, "{doc}");
        }
    }
    // An escaped key inside a skipped object is skipped like any string.
    let (fast, slow) = both(&t, r#"{"skip":{"k\"ey":[1,{"x\\":"y"}]},"ab":7}"#);
    assert_eq!(fast.expect("escapes in skipped keys walk"), slow.unwrap());
}

#[test]
fn integers_read_without_serde_equal_serdes() {
    let t = trie(&["/n"]);
    for n in [
        "0",
        "7",
        "200",
        "1792972811026",
        "9999999999999999999",
        "18446744073709551615",
        "18446744073709551616",
        "-1",
        "-0",
        "0.5",
        "12.0",
    ] {
        let doc = format!(r#"{{"n":{n}}}"#);
        let (fast, slow) = both(&t, &doc);
        assert_eq!(Ok(fast.expect("a number walks")), slow, "{n}");
    }
}

#[test]
fn what_the_walker_is_unsure_of_it_leaves_to_serde() {
    let t = trie(&["/a", "/b/0"]);
    for doc in [
        r#"{"a":"esc\"aped"}"#,    // an escape in a string read
        r#"{"x":"\u00e9","a":1}"#, // \u anywhere
        r#"{"a":1e3}"#,            // an exponent
        r#"{"a":123456789012345678901234}"#,
        r#"{"a\"":1}"#,    // an escaped key
        r#"{"a":1,}"#,     // a syntax error
        r#"{"a":01}"#,     // an invalid number
        r#"{"a":"tab	"}"#, // a raw control character
        r#"{"a":tru}"#,
        r#"{"a":1} x"#,
        r#"{"a":1"#,
    ] {
        let (fast, _) = both(&t, doc);
        assert!(fast.is_none(), "{doc}");
    }
    let deep = format!("{}1{}", "[".repeat(120), "]".repeat(120));
    assert!(both(&t, &format!(r#"{{"z":{deep},"a":1}}"#)).0.is_none());
}

/// Arbitrary JSON-ish text from a small alphabet, and valid documents.
fn doc() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| v.to_string()),
        (-1e6f64..1e6).prop_map(|v| v.to_string()),
        "[a-c0-9 /\\\\\"é\t]{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        "[a-c]{0,3}".prop_map(|s| format!("\"{s}\"")),
    ];
    let value = leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("(a|b|c|key|value|0|1|stringValue|x)", inner), 0..5).prop_map(
                |kv| {
                    let m: Vec<String> = kv
                        .into_iter()
                        .map(|(k, v)| format!("\"{k}\": {v}"))
                        .collect();
                    format!("{{{}}}", m.join(","))
                }
            ),
        ]
    });
    prop_oneof![
        4 => value.clone(),
        // Mutations: a byte cut off, a byte dropped in, junk appended.
        1 => (value.clone(), any::<prop::sample::Index>()).prop_map(|(v, i)| {
            let cut = i.index(v.len() + 1);
            v.char_indices().take_while(|(p, _)| *p < cut).map(|(_, c)| c).collect()
        }),
        1 => (value, any::<prop::sample::Index>(), "[,:\\]\\[{}\" x-]").prop_map(|(v, i, j)| {
            let at = i.index(v.len() + 1);
            let at = (0..=at).rev().find(|p| v.is_char_boundary(*p)).unwrap_or(0);
            format!("{}{}{}", &v[..at], j, &v[at..])
        }),
    ]
}

/// The property below only means something if the walker does accept
/// most valid documents (a walker that always declines would pass it).
#[test]
fn the_walker_accepts_most_valid_generated_documents() {
    use proptest::strategy::ValueTree;
    let t = trie(&[
        "/a", "/b/0", "/b/key", "/c/a/b", "/key", "/value/x", "/0", "/x/c",
    ]);
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut valid, mut walked) = (0, 0);
    for _ in 0..2000 {
        let d = doc().new_tree(&mut runner).unwrap().current();
        if serde_json::from_str::<serde::de::IgnoredAny>(&d).is_ok() {
            valid += 1;
            walked += usize::from(both(&t, &d).0.is_some());
        }
    }
    assert!(valid > 1000, "{valid} valid documents of 2000");
    assert!(
        walked * 10 > valid * 6,
        "walked {walked} of {valid} valid documents"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn walker_agrees_with_serde_on_arbitrary_documents(d in doc()) {
        let t = trie(&["/a", "/b/0", "/b/key", "/c/a/b", "/key", "/value/x", "/0", "/x/c", "/a/1/b"]);
        let (fast, slow) = both(&t, &d);
        if let Some(fast) = fast {
            // Accepted by the walker → accepted by serde, same slots.
            prop_assert_eq!(Ok(fast), slow);
        }
    }
}
