//! Files and stdin → events: JSON formats read one document per line
//! (JSONL); CSV formats read the whole input as one CSV text whose first
//! row is the header (Salesforce ELF files), so quoted values may span lines.

use std::borrow::Cow;
use std::io::{self, BufRead, Read};

use super::decode::{empty_slots, Val};
use super::{Format, Mapping};
use crate::event::{RawEvent, Reject, RejectReason, MAX_EVENT_BYTES};
use crate::lines::{read_bounded_line, Line};

/// What a stream held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    /// Non-empty lines (JSON) or data rows (CSV).
    pub records: u64,
}

/// Reads every record of `input` in `format` and hands each outcome to
/// `sink` with its line number (1-based). I/O and CSV framing errors end the
/// stream with an error; bad records never do.
pub fn read_events<R, F>(format: &Format, mut input: R, mut sink: F) -> io::Result<StreamStats>
where
    R: BufRead,
    F: FnMut(u64, Result<RawEvent<'_>, Reject>),
{
    let mut stats = StreamStats::default();
    if let Format::Mapped(m) = format {
        if let super::Decoder::Csv { columns } = &m.decoder {
            decode_csv_reader(m, columns, input, &mut |line, r| {
                stats.records += 1;
                sink(line, r);
            })
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            return Ok(stats);
        }
    }
    // Lines are read bounded (an oversize line is skipped, never buffered
    // whole): a record's limit for canonical input, a message's for mapped
    // formats (a line may hold a Kong batch or a CloudWatch envelope).
    let limit = match format {
        Format::Canonical => MAX_EVENT_BYTES + 1,
        Format::Mapped(_) => super::MAX_MESSAGE_BYTES + 1,
    };
    let mut line = Vec::with_capacity(4096);
    let mut lineno = 0u64;
    loop {
        // A line that lies whole in the reader's buffer is decoded where it
        // is (no copy); one that straddles the buffer's end, or is longer
        // than it, goes through the bounded copy below.
        if let Some((used, record)) =
            decode_buffered_line(format, &mut input, limit, lineno + 1, &mut sink)?
        {
            lineno += 1;
            stats.records += u64::from(record);
            input.consume(used);
            continue;
        }
        let read = read_bounded_line(&mut input, &mut line, limit)?;
        if read == Line::Eof {
            return Ok(stats);
        }
        lineno += 1;
        let text = trim_line(&line);
        if let Line::Oversize { len } = read {
            stats.records += 1;
            sink(
                lineno,
                Err(Reject::new(
                    RejectReason::TooLarge,
                    format!("{len} bytes > {}", limit - 1),
                )),
            );
            continue;
        }
        if text.is_empty() {
            continue;
        }
        stats.records += 1;
        format.decode(text, &mut |r| sink(lineno, r));
    }
}

/// Decodes the next line in place when the reader's buffer holds all of it
/// up to its `\n` (and it is within `limit`): returns the bytes to consume
/// and whether the line was a record (not blank), or `None` when the line
/// is not whole in the buffer (or the input has ended), nothing consumed.
fn decode_buffered_line<R, F>(
    format: &Format,
    input: &mut R,
    limit: usize,
    lineno: u64,
    sink: &mut F,
) -> io::Result<Option<(usize, bool)>>
where
    R: BufRead,
    F: FnMut(u64, Result<RawEvent<'_>, Reject>),
{
    let chunk = loop {
        match input.fill_buf() {
            Ok(c) => break c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    let Some(end) = memchr::memchr(b'\n', chunk) else {
        return Ok(None);
    };
    if end > limit {
        return Ok(None);
    }
    let text = trim_line(&chunk[..end]);
    if text.is_empty() {
        return Ok(Some((end + 1, false)));
    }
    format.decode(text, &mut |r| sink(lineno, r));
    Ok(Some((end + 1, true)))
}

/// The line without its end-of-line and surrounding whitespace.
pub fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    let mut start = 0;
    while start < end && line[start].is_ascii_whitespace() {
        start += 1;
    }
    &line[start..end]
}

/// One Kafka message holding a CSV text (header row first).
pub(crate) fn decode_csv<F>(m: &Mapping, columns: &[String], bytes: &[u8], sink: &mut F)
where
    F: FnMut(Result<RawEvent<'_>, Reject>),
{
    if let Err(e) = decode_csv_reader(m, columns, bytes, &mut |_, r| sink(r)) {
        sink(Err(Reject::new(
            RejectReason::InvalidField,
            format!("CSV: {e}"),
        )));
    }
}

/// ELF values with special characters may come wrapped in three quotes
/// (`"""x"""`), which CSV unquoting leaves as `"x"`.
fn unwrap_quotes(s: &str) -> &str {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

fn decode_csv_reader<R, F>(
    m: &Mapping,
    columns: &[String],
    input: R,
    sink: &mut F,
) -> Result<(), csv::Error>
where
    R: Read,
    F: FnMut(u64, Result<RawEvent<'_>, Reject>),
{
    // Rows end at `\n` only, so a CRLF file (Salesforce's, or any file a
    // Windows tool wrote) counts lines as an LF file does; the `\r` left on
    // a row's last value is trimmed below.
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(input);
    let slot_of: Vec<Option<u16>> = rdr
        .byte_headers()?
        .iter()
        .map(|h| {
            let h = std::str::from_utf8(h)
                .map(|h| unwrap_quotes(h.trim()))
                .unwrap_or("");
            columns.iter().position(|c| c == h).map(|i| i as u16)
        })
        .collect();
    let mut rec = csv::ByteRecord::new();
    loop {
        // The reader counts a line when it consumes a `\n`, but consumes
        // blank lines and a pending terminator only when the next record is
        // read: its position before the read lags by the blank lines, and
        // its position after by the record's own `\n` (if it has one, the
        // last row may not) and the newlines inside quoted values. The
        // later of the two is the record's first line in either case.
        let before = rdr.position().line();
        if !rdr.read_byte_record(&mut rec)? {
            return Ok(());
        }
        let inner = rec.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
        let line = before.max(rdr.position().line().saturating_sub(inner + 1));
        if rec.as_slice().len() > MAX_EVENT_BYTES {
            sink(
                line,
                Err(Reject::new(
                    RejectReason::TooLarge,
                    format!("{} bytes > {MAX_EVENT_BYTES}", rec.as_slice().len()),
                )),
            );
            continue;
        }
        let mut slots = empty_slots();
        let mut bad = None;
        for (i, f) in rec.iter().enumerate() {
            let Some(Some(s)) = slot_of.get(i) else {
                continue;
            };
            match std::str::from_utf8(f) {
                Ok(t) => {
                    let t = t.strip_suffix('\r').unwrap_or(t);
                    slots[usize::from(*s)] = Val::Str(Cow::Borrowed(unwrap_quotes(t)));
                }
                Err(e) => {
                    bad = Some(e.valid_up_to());
                    break;
                }
            }
        }
        match bad {
            Some(at) => sink(
                line,
                Err(Reject::new(
                    RejectReason::InvalidUtf8,
                    format!("invalid UTF-8 in a column at byte {at}"),
                )),
            ),
            None => sink(line, m.assemble(&mut slots)),
        }
    }
}
