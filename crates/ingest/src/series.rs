//! `timestamp,value` CSV series (the Numenta Anomaly Benchmark layout):
//! a header naming a `timestamp` and a `value` column (any order, other
//! columns ignored), then one row per line. Errors carry the 1-based line
//! number and a bounded kind — never the offending text, which is input.
//!
//! Timestamps: `YYYY-MM-DD[ T]HH:MM:SS[.frac]` with an optional `Z` or
//! `±HH:MM` offset (no offset = UTC, as NAB's are), or epoch seconds.

use thiserror::Error;
use tripline_engine::time::parse_rfc3339;

/// What is wrong with a CSV series, and on which line.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SeriesCsvError {
    #[error("line 1: the header must name a `timestamp` and a `value` column")]
    Header,
    #[error("line {line}: {kind}")]
    Row { line: u64, kind: RowError },
}

/// Why one data row was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum RowError {
    #[error("fewer fields than the header")]
    MissingField,
    #[error("timestamp is not `YYYY-MM-DD HH:MM:SS[.frac][Z|±HH:MM]` or epoch seconds")]
    BadTimestamp,
    #[error("value is not a number")]
    BadValue,
    #[error("value is not finite")]
    NonFinite,
    #[error("line is not UTF-8")]
    NotUtf8,
    #[error("line longer than the limit")]
    TooLong,
}

/// One parsed data row, borrowing its fields' text from the line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row<'a> {
    /// Epoch milliseconds.
    pub ts_ms: i64,
    pub value: f64,
    /// The timestamp field as written (trimmed, unquoted; it parsed, so it
    /// holds only timestamp characters).
    pub timestamp: &'a [u8],
    /// The value field as written (trimmed, unquoted; it parsed as a number).
    pub value_text: &'a [u8],
}

/// The column positions a header names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Columns {
    timestamp: usize,
    value: usize,
}

fn trim(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\r").unwrap_or(b);
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &b[start..end.max(start)]
}

fn unquote(b: &[u8]) -> &[u8] {
    let b = trim(b);
    if b.len() >= 2 && b[0] == b'"' && b[b.len() - 1] == b'"' {
        &b[1..b.len() - 1]
    } else {
        b
    }
}

/// Reads the header line (a leading UTF-8 BOM is ignored).
pub fn parse_header(line: &[u8]) -> Result<Columns, SeriesCsvError> {
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let (mut ts, mut val) = (None, None);
    for (i, f) in line.split(|&c| c == b',').enumerate() {
        let f = unquote(f);
        if f.eq_ignore_ascii_case(b"timestamp") && ts.is_none() {
            ts = Some(i);
        } else if f.eq_ignore_ascii_case(b"value") && val.is_none() {
            val = Some(i);
        }
    }
    match (ts, val) {
        (Some(timestamp), Some(value)) => Ok(Columns { timestamp, value }),
        _ => Err(SeriesCsvError::Header),
    }
}

/// Parses a timestamp into epoch milliseconds.
pub fn parse_timestamp(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    if b.len() >= 19 && b.get(4) == Some(&b'-') {
        if let Some(t) = parse_rfc3339(s) {
            return Some(t);
        }
        // No offset: UTC. Append a `Z` in a stack buffer (no allocation).
        let mut buf = [0u8; 40];
        if b.len() >= buf.len() {
            return None;
        }
        buf[..b.len()].copy_from_slice(b);
        buf[b.len()] = b'Z';
        return std::str::from_utf8(&buf[..=b.len()])
            .ok()
            .and_then(parse_rfc3339);
    }
    let secs: f64 = s.parse().ok()?;
    let ms = secs * 1000.0;
    (ms.is_finite() && ms.abs() < 1e17).then(|| ms.round() as i64)
}

/// Parses one data row (without its newline). `Ok(None)` for a blank line.
pub fn parse_row(line: &[u8], cols: Columns) -> Result<Option<Row<'_>>, RowError> {
    if trim(line).is_empty() {
        return Ok(None);
    }
    let (mut ts, mut val) = (None, None);
    for (i, f) in line.split(|&c| c == b',').enumerate() {
        if i == cols.timestamp {
            ts = Some(unquote(f));
        }
        if i == cols.value {
            val = Some(unquote(f));
        }
        if ts.is_some() && val.is_some() {
            break;
        }
    }
    let (Some(ts), Some(val)) = (ts, val) else {
        return Err(RowError::MissingField);
    };
    let ts_ms = parse_timestamp(ts).ok_or(RowError::BadTimestamp)?;
    let text = std::str::from_utf8(val).map_err(|_| RowError::NotUtf8)?;
    let value: f64 = text.parse().map_err(|_| RowError::BadValue)?;
    if !value.is_finite() {
        return Err(RowError::NonFinite);
    }
    Ok(Some(Row {
        ts_ms,
        value,
        timestamp: ts,
        value_text: val,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_row(line: &[u8], cols: Columns) -> Result<Option<(i64, f64)>, RowError> {
        super::parse_row(line, cols).map(|r| r.map(|r| (r.ts_ms, r.value)))
    }

    #[test]
    fn fields_are_kept_as_written() {
        let c = parse_header(b"timestamp,value").unwrap();
        let r = super::parse_row(b" 2014-04-01 00:05:00 ,\"20.50\"", c)
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.timestamp, r.value_text),
            (&b"2014-04-01 00:05:00"[..], &b"20.50"[..])
        );
    }

    #[test]
    fn nab_rows_parse() {
        let c = parse_header(b"timestamp,value").unwrap();
        assert_eq!(
            parse_row(b"2014-04-01 00:05:00,20.5", c),
            Ok(Some((1_396_310_700_000, 20.5)))
        );
        assert_eq!(
            parse_row(b"2011-07-01 00:00:01.000000,1e-3\r", c),
            Ok(Some((1_309_478_401_000, 0.001)))
        );
        assert_eq!(
            parse_row(b"2014-04-01T02:00:00+02:00,1", c),
            Ok(Some((1_396_310_400_000, 1.0)))
        );
        assert_eq!(
            parse_row(b"1396310400,7", c),
            Ok(Some((1_396_310_400_000, 7.0)))
        );
        assert_eq!(parse_row(b"  ", c), Ok(None));
    }

    #[test]
    fn header_columns_in_any_order() {
        let c = parse_header(b"\xEF\xBB\xBF\"value\",label,Timestamp").unwrap();
        assert_eq!(
            parse_row(b"3.5,x,2014-04-01 00:00:00", c),
            Ok(Some((1_396_310_400_000, 3.5)))
        );
        assert_eq!(parse_header(b"time,value"), Err(SeriesCsvError::Header));
    }

    #[test]
    fn bad_rows_say_why() {
        let c = parse_header(b"timestamp,value").unwrap();
        assert_eq!(
            parse_row(b"2014-04-01 00:00:00", c),
            Err(RowError::MissingField)
        );
        assert_eq!(
            parse_row(b"2014-13-01 00:00:00,1", c),
            Err(RowError::BadTimestamp)
        );
        assert_eq!(parse_row(b"yesterday,1", c), Err(RowError::BadTimestamp));
        assert_eq!(
            parse_row(b"2014-04-01 00:00:00,abc", c),
            Err(RowError::BadValue)
        );
        assert_eq!(
            parse_row(b"2014-04-01 00:00:00,NaN", c),
            Err(RowError::NonFinite)
        );
        assert_eq!(
            parse_row(b"2014-04-01 00:00:00,inf", c),
            Err(RowError::NonFinite)
        );
        let e = SeriesCsvError::Row {
            line: 7,
            kind: RowError::BadValue,
        };
        assert_eq!(e.to_string(), "line 7: value is not a number");
    }
}
