//! Bounded line reading for JSONL input (files, stdin): a line longer than
//! the limit is skipped up to its newline without ever being buffered whole,
//! so one hostile line costs a bounded amount of memory, not its size.

use std::io::{self, BufRead};

/// What [`read_bounded_line`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    /// End of input; nothing was read.
    Eof,
    /// A line (without its `\n`) is in the buffer.
    Ok,
    /// A line longer than the limit was skipped up to and including its
    /// newline (or the end of input); `len` is its length in bytes. The
    /// buffer holds only its first `limit` bytes.
    Oversize { len: u64 },
}

/// Reads the next `\n`-terminated line into `buf` (cleared first), never
/// holding more than `limit` bytes of it.
pub fn read_bounded_line(
    input: &mut impl BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> io::Result<Line> {
    buf.clear();
    let mut len: u64 = 0;
    let mut read_any = false;
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        read_any = true;
        let (part, done) = match memchr_newline(chunk) {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        let room = limit.saturating_sub(buf.len());
        buf.extend_from_slice(&part[..part.len().min(room)]);
        len += part.len() as u64;
        let used = done.unwrap_or(chunk.len());
        input.consume(used);
        if done.is_some() {
            break;
        }
    }
    Ok(if !read_any {
        Line::Eof
    } else if len > limit as u64 {
        Line::Oversize { len }
    } else {
        Line::Ok
    })
}

/// SIMD search: the line split is a pass over every input byte.
fn memchr_newline(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor, Read};

    fn all(input: &[u8], limit: usize) -> Vec<(Line, Vec<u8>)> {
        let mut r = BufReader::with_capacity(7, Cursor::new(input.to_vec()));
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let l = read_bounded_line(&mut r, &mut buf, limit).unwrap();
            if l == Line::Eof {
                return out;
            }
            out.push((l, buf.clone()));
        }
    }

    #[test]
    fn splits_lines_like_read_until_within_the_limit() {
        let got = all(b"ab\n\ncdef\r\nlast", 10);
        assert_eq!(
            got,
            [
                (Line::Ok, b"ab".to_vec()),
                (Line::Ok, b"".to_vec()),
                (Line::Ok, b"cdef\r".to_vec()),
                (Line::Ok, b"last".to_vec()),
            ]
        );
        assert!(all(b"", 10).is_empty());
    }

    #[test]
    fn an_oversize_line_is_skipped_to_its_newline() {
        let got = all(b"0123456789abc\nok\n0123456789x", 10);
        assert_eq!(got[0], (Line::Oversize { len: 13 }, b"0123456789".to_vec()));
        assert_eq!(got[1], (Line::Ok, b"ok".to_vec()));
        assert_eq!(got[2], (Line::Oversize { len: 11 }, b"0123456789".to_vec()));
        assert_eq!(got.len(), 3);
        // Exactly the limit is fine.
        assert_eq!(all(b"0123456789\n", 10)[0].0, Line::Ok);
    }

    #[test]
    fn memory_stays_bounded_on_a_huge_line() {
        // 256 MiB without a newline, then a short line.
        let huge = io::repeat(b'a').take(256 << 20).chain(&b"\nok\n"[..]);
        let mut r = BufReader::with_capacity(1 << 16, huge);
        let mut buf = Vec::new();
        let l = read_bounded_line(&mut r, &mut buf, 64 * 1024).unwrap();
        assert_eq!(l, Line::Oversize { len: 256 << 20 });
        assert!(buf.capacity() <= 2 * 64 * 1024, "{}", buf.capacity());
        assert_eq!(
            read_bounded_line(&mut r, &mut buf, 64 * 1024).unwrap(),
            Line::Ok
        );
        assert_eq!(buf, b"ok");
    }
}
