//! The mapping layer's contract beyond the golden files: one test per
//! reject reason, the opt-in route fallback, dropped optional fields,
//! keyed hashing from a key file, and CSV / batch messages as Kafka sees them.

use tripline_ingest::mapping::builtin::mapping_from_str;
use tripline_ingest::mapping::Format;
use tripline_ingest::{load_format, RejectReason};

fn outcomes(format: &Format, input: &[u8]) -> Vec<Result<String, RejectReason>> {
    let mut out = Vec::new();
    format.decode(input, &mut |r| {
        out.push(
            r.map(|e| {
                let mut b = Vec::new();
                e.write_canonical_json(&mut b);
                String::from_utf8(b).unwrap()
            })
            .map_err(|j| j.reason),
        );
    });
    out
}

fn kong() -> Format {
    load_format(Some("kong"), None).unwrap()
}

const OK: &str = r#"{"request":{"method":"GET","uri":"/crm/v3/objects/contacts"},"response":{"status":200},"consumer":{"username":"a"},"started_at":1764425000000}"#;

#[test]
fn missing_required_field_after_all_fallbacks_is_missing_field() {
    let r = outcomes(&kong(), br#"{"request":{"method":"GET","uri":"/crm/v3/objects/contacts"},"response":{"status":200},"consumer":{},"started_at":1}"#);
    assert_eq!(r, vec![Err(RejectReason::MissingField)]);
    // Any one fallback suffices.
    let r = outcomes(&kong(), br#"{"request":{"method":"GET","uri":"/crm/v3/objects/contacts"},"response":{"status":200},"consumer":{"id":"c9"},"started_at":1}"#);
    assert!(r[0].as_ref().unwrap().contains(r#""integration_id":"c9""#));
}

#[test]
fn failed_cast_or_time_on_a_required_field_is_invalid_field() {
    for bad in [
        r#"{"request":{"method":"GET","uri":"/crm/v3/objects/contacts"},"response":{"status":"2oo"},"consumer":{"username":"a"},"started_at":1}"#,
        r#"{"request":{"method":"GET","uri":"/crm/v3/objects/contacts"},"response":{"status":200},"consumer":{"username":"a"},"started_at":"soon"}"#,
        r#"{"request":{"method":"GET","uri":"/crm/v3/objects/contacts"},"response":{"status":70000},"consumer":{"username":"a"},"started_at":1}"#,
    ] {
        assert_eq!(
            outcomes(&kong(), bad.as_bytes()),
            vec![Err(RejectReason::InvalidField)],
            "{bad}"
        );
    }
}

#[test]
fn a_path_no_route_matches_is_unmapped_resource_unless_the_profile_falls_back() {
    let input = br#"{"request":{"method":"GET","uri":"/v1/widgets/9"},"response":{"status":200},"consumer":{"username":"a"},"started_at":1}"#;
    let mut detail = String::new();
    kong().decode(input, &mut |r| detail = r.unwrap_err().detail);
    assert!(detail.contains("/v1/widgets/9"), "{detail}");
    assert_eq!(
        outcomes(&kong(), input),
        vec![Err(RejectReason::UnmappedResource)]
    );
    let fb = Format::Mapped(std::sync::Arc::new(
        mapping_from_str(
            "extends = \"kong\"\n[routes]\nfallback = \"first_segment\"\n",
            None,
            "t",
        )
        .unwrap(),
    ));
    let r = outcomes(&fb, input);
    assert!(
        r[0].as_ref().unwrap().contains(r#""resource":"widgets""#),
        "{r:?}"
    );
}

#[test]
fn an_optional_field_that_fails_is_dropped_and_counted_not_fatal() {
    let input = br#"{"request":{"method":"GET","uri":"/crm/v3/objects/contacts"},"response":{"status":200,"size":"lots"},"consumer":{"username":"a"},"client_ip":"Salesforce.com IP","started_at":1}"#;
    let mut dropped = None;
    kong().decode(input, &mut |r| dropped = Some(r.unwrap().dropped_fields()));
    assert_eq!(dropped, Some(2));
}

#[test]
fn framing_errors_keep_their_canonical_reasons() {
    assert_eq!(
        outcomes(&kong(), b"{nope"),
        vec![Err(RejectReason::InvalidJson)]
    );
    assert_eq!(
        outcomes(&kong(), b"\xff{}"),
        vec![Err(RejectReason::InvalidUtf8)]
    );
    let mut big = OK.as_bytes().to_vec();
    big.truncate(big.len() - 1);
    big.extend_from_slice(br#","pad":""#);
    big.extend_from_slice(&[b'x'; 70 * 1024]);
    big.extend_from_slice(b"\"}");
    assert_eq!(outcomes(&kong(), &big), vec![Err(RejectReason::TooLarge)]);
}

#[test]
fn a_kong_batch_message_yields_one_outcome_per_element_in_order() {
    let msg = format!("[{OK},{{\"bad\":1}},{OK}]");
    let r = outcomes(&kong(), msg.as_bytes());
    assert_eq!(r.len(), 3);
    assert!(r[0].is_ok() && r[2].is_ok());
    assert_eq!(r[1], Err(RejectReason::MissingField));
}

#[test]
fn a_csv_message_with_its_header_row_is_decoded_like_a_file() {
    let f = load_format(Some("salesforce-elf"), None).unwrap();
    let msg = "EVENT_TYPE,TIMESTAMP_DERIVED,CONNECTED_APP_ID,ENTITY_NAME,METHOD,STATUS_CODE\nRestApi,2026-11-29T14:03:12.345Z,0H4RM00000000Kr,Account,GET,200\nRestApi,2026-11-29T14:03:13Z,0H4RM00000000Kr,,GET,200\n";
    let r = outcomes(&f, msg.as_bytes());
    assert!(
        r[0].as_ref()
            .unwrap()
            .contains(r#""integration_id":"0H4RM00000000Kr0AI","resource":"accounts""#),
        "{r:?}"
    );
    assert_eq!(
        r[1],
        Err(RejectReason::MissingField),
        "no ENTITY_NAME and no URI"
    );
}

#[test]
fn keyed_hashing_reads_its_key_from_a_file_and_never_emits_the_secret() {
    let dir = std::env::temp_dir().join(format!("tripline-hash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key");
    std::fs::write(&key, "s3cret-key\n").unwrap();
    // Apigee-style: the client id *is* the API key.
    let profile = format!(
        "extends = \"kong\"\n[fields.key_id]\npath = \"/request/headers/apikey\"\nhash = {{ key_file = {:?} }}\n",
        key.display().to_string()
    );
    let f = Format::Mapped(std::sync::Arc::new(
        mapping_from_str(&profile, None, "t").unwrap(),
    ));
    let input = br#"{"request":{"method":"GET","uri":"/crm/v3/objects/contacts","headers":{"apikey":"AKIA-raw-key-value"}},"response":{"status":200},"consumer":{"username":"a"},"started_at":1}"#;
    let r = outcomes(&f, input);
    let ev = r[0].as_ref().unwrap();
    assert!(!ev.contains("AKIA-raw-key-value"), "{ev}");
    assert!(ev.contains(r#""key_id":"h:"#), "{ev}");
    // Same input, same key → same id (baselines stay keyed).
    assert_eq!(outcomes(&f, input), r);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn message_paths_read_the_envelope_around_each_record() {
    // `$/logGroup` (no `*`): the CloudWatch envelope's log group, for every
    // record of the message; the record's own tenant would win.
    let m = mapping_from_str(
        "extends = \"aws-apigateway\"\nname = \"cw\"\n[fields.tenant]\npath = [\"/stage\", \"$/logGroup\"]\n",
        None,
        "test",
    )
    .unwrap();
    let format = Format::Mapped(std::sync::Arc::new(m));
    let rec = r#"{\"requestTimeEpoch\":1764425000000,\"apiKeyId\":\"k1\",\"httpMethod\":\"GET\",\"path\":\"/crm/v3/objects/contacts\",\"status\":\"200\"}"#;
    let msg = format!(
        r#"{{"messageType":"DATA_MESSAGE","logGroup":"api-gw/prod","logEvents":[{{"id":"1","message":"{rec}"}},{{"id":"2","message":"{rec}"}}]}}"#
    );
    let r = outcomes(&format, msg.as_bytes());
    assert_eq!(r.len(), 2);
    for e in &r {
        assert!(
            e.as_ref().unwrap().contains(r#""tenant":"api-gw/prod""#),
            "{e:?}"
        );
    }
    // A `*` step that is not one of the roots' is refused when compiling.
    let err = mapping_from_str(
        "extends = \"otel-http\"\nname = \"o\"\n[fields.tenant]\npath = \"$/resourceMetrics/*/resource/attributes/x\"\n",
        None,
        "test",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("`*` steps must be those of a root"),
        "{err}"
    );
}

#[test]
fn csv_line_numbers_are_the_same_for_crlf_and_lf_files() {
    let elf = load_format(Some("salesforce-elf"), None).unwrap();
    let lf = "\"EVENT_TYPE\",\"TIMESTAMP_DERIVED\",\"CONNECTED_APP_ID\",\"URI\",\"METHOD\",\"STATUS_CODE\"\n\
              \"RestApi\",\"2026-11-29T14:03:12.345Z\",\"0H4RM00000000Kr\",\"/services/data/v61.0/sobjects/Contact/1\",\"GET\",\"200\"\n\
              \"RestApi\",\"\",\"0H4RM00000000Kr\",\"/services/data/v61.0/sobjects/Contact/1\",\"GET\",\"200\"\n\
              \"RestApi\",\"2026-11-29T14:03:13.345Z\",\"0H4RM00000000Kr\",\"/services/data/v61.0/sobjects/Contact/2\",\"GET\",\"200\"\n";
    let crlf = lf.replace('\n', "\r\n");
    let lines = |text: &str| {
        let mut got = Vec::new();
        tripline_ingest::read_events(&elf, text.as_bytes(), |line, r| got.push((line, r.is_ok())))
            .unwrap();
        got
    };
    let want = vec![(2, true), (3, false), (4, true)];

    assert_eq!(lines(lf), want, "lf");
    assert_eq!(lines(&crlf), want, "crlf");
    // The last row without its newline, and a blank line before a row.
    assert_eq!(lines(lf.trim_end()), want, "no final newline");
    assert_eq!(lines(crlf.trim_end()), want, "crlf, no final newline");
    let blank = lf.replacen("\n\"RestApi\",\"\"", "\n\n\"RestApi\",\"\"", 1);
    assert_eq!(
        lines(&blank),
        vec![(2, true), (4, false), (5, true)],
        "blank line"
    );
    // A quoted value spanning lines: the next row still names its own line.
    let multi = lf.replacen("\"GET\"", "\"GET\n\"", 1);
    assert_eq!(lines(&multi)[1].0, 4, "after a two-line row");
}

#[test]
fn jsonl_records_read_alike_whether_a_line_is_whole_in_the_buffer_or_straddles_it() {
    // Lines decoded in the reader's buffer and lines copied out of it (the
    // ones that straddle its end) give the same outcomes, line numbers and
    // record count: blank lines, CRLF, surrounding spaces, a bad record,
    // a batch, no final newline.
    let bad = r#"{"request":{"method":"GET"}"#;
    let text = format!("{OK}\n\n  {OK}\r\n{bad}\n\r\n[{OK},{OK}]\n{OK}");
    let read = |cap: usize| {
        let mut got = Vec::new();
        let stats = tripline_ingest::read_events(
            &kong(),
            std::io::BufReader::with_capacity(cap, text.as_bytes()),
            |line, r| got.push((line, r.map(|e| e.event().ts_ms).map_err(|j| j.reason))),
        )
        .unwrap();
        (got, stats.records)
    };
    let whole = read(1 << 16);
    assert_eq!(whole.1, 5);
    assert_eq!(
        whole
            .0
            .iter()
            .map(|(l, r)| (*l, r.is_ok()))
            .collect::<Vec<_>>(),
        vec![
            (1, true),
            (3, true),
            (4, false),
            (6, true),
            (6, true),
            (7, true)
        ]
    );
    for cap in 1..=2 * OK.len() + 8 {
        assert_eq!(read(cap), whole, "buffer of {cap} bytes");
    }
}
