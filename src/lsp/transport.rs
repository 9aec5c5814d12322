//! The stdio transport of the language server: reads `Content-Length`-framed JSON-RPC messages
//! from a reader and writes the server's messages to a writer, on two threads joined to a
//! [`Connection`]. Unlike `lsp_server`'s own stdio transport it never trusts the client: a
//! header line, header block or body larger than the limits is refused without allocating it
//! (an oversized body is skipped in small pieces, keeping the stream in step), and a body that
//! is not JSON-RPC is reported to the client and skipped; the server keeps serving. Knows
//! framing only, nothing of `.peft`.

use lsp_server::{Connection, Message, Notification};
use std::io::{self, BufRead, Read, Write};
use std::thread::JoinHandle;

/// The largest message body accepted (a whole-document `didOpen` of a very large file fits).
pub const MAX_MESSAGE: u64 = 64 << 20;
/// The longest header line accepted.
const MAX_HEADER_LINE: usize = 1024;
/// The most header lines before the blank line that ends them.
const MAX_HEADERS: usize = 32;

/// What one read from the stream gave.
#[derive(Debug)]
pub enum Frame {
    /// A message body within the limit.
    Body(Vec<u8>),
    /// A frame that was refused and skipped; the text says why (sent to the client).
    Refused(String),
    /// The stream ended.
    End,
}

/// Reads one frame from `r`. Errors are I/O errors or a stream that cannot be resynchronised
/// (a header block that never ends); a merely bad frame is [`Frame::Refused`].
pub fn read_frame(r: &mut impl BufRead, max_body: u64) -> io::Result<Frame> {
    let mut length: Option<Result<u64, String>> = None;
    let mut lines = 0;
    loop {
        let line = match read_line(r)? {
            Some(l) => l,
            None => return Ok(Frame::End),
        };
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if lines == 0 {
                // Blank lines between messages: skip them.
                continue;
            }
            break;
        }
        lines += 1;
        if lines > MAX_HEADERS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more than {MAX_HEADERS} header lines"),
            ));
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("content-length") {
            let v = value.trim();
            length = Some(match v.parse::<u64>() {
                Ok(n) => Ok(n),
                // All digits but too large for 64 bits: larger than any limit.
                Err(_) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => Ok(u64::MAX),
                Err(_) => Err(format!("`Content-Length: {v}` is not a number")),
            });
        }
    }
    let n = match length {
        None => return Ok(Frame::Refused("a message without `Content-Length`".into())),
        Some(Err(e)) => return Ok(Frame::Refused(e)),
        Some(Ok(n)) => n,
    };
    if n > max_body {
        // Skip the body without holding it; a client that never sends it ends the stream.
        let skipped = io::copy(&mut r.take(n), &mut io::sink())?;
        return Ok(if skipped < n {
            Frame::End
        } else {
            Frame::Refused(format!(
                "a message of {n} bytes, more than the {max_body} bytes accepted"
            ))
        });
    }
    let mut body = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    r.take(n).read_to_end(&mut body)?;
    if (body.len() as u64) < n {
        return Ok(Frame::End);
    }
    Ok(Frame::Body(body))
}

/// One header line, refused past [`MAX_HEADER_LINE`] bytes; `None` at the end of the stream.
fn read_line(r: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r
        .take(MAX_HEADER_LINE as u64 + 1)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if !buf.ends_with(b"\n") && buf.len() > MAX_HEADER_LINE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a header line longer than {MAX_HEADER_LINE} bytes"),
        ));
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// A `window/logMessage` error for the client.
fn complaint(text: &str) -> Message {
    Message::Notification(Notification::new(
        "window/logMessage".to_string(),
        serde_json::json!({ "type": 1, "message": format!("peftc lsp: {text}") }),
    ))
}

/// The reader and writer threads of a connection; join them after the server returns.
pub struct IoThreads {
    reader: JoinHandle<io::Result<()>>,
    writer: JoinHandle<io::Result<()>>,
}

impl IoThreads {
    /// Waits for the writer to flush everything. The reader is left to end with its stream (it
    /// may be blocked on a client that keeps the stream open).
    pub fn join(self) -> io::Result<()> {
        drop(self.reader);
        match self.writer.join() {
            Ok(r) => r,
            Err(_) => Err(io::Error::other("the writer thread panicked")),
        }
    }
}

/// A connection over `input` and `output` with bounded reads (stdio in `peftc lsp`).
pub fn connect(
    input: impl BufRead + Send + 'static,
    output: impl Write + Send + 'static,
) -> (Connection, IoThreads) {
    let (server, client) = Connection::memory();
    let to_server = client.sender;
    let from_server = client.receiver;
    let (notes_tx, notes_rx) = std::sync::mpsc::channel::<Message>();
    let reader = std::thread::spawn(move || {
        let mut input = input;
        loop {
            match read_frame(&mut input, MAX_MESSAGE)? {
                Frame::End => return Ok(()),
                Frame::Refused(why) => {
                    let _ = notes_tx.send(complaint(&why));
                }
                Frame::Body(body) => match serde_json::from_slice::<Message>(&body) {
                    Ok(msg) => {
                        let exit = matches!(&msg, Message::Notification(n) if n.method == "exit");
                        if to_server.send(msg).is_err() || exit {
                            return Ok(());
                        }
                    }
                    Err(e) => {
                        let _ = notes_tx.send(complaint(&format!(
                            "a message that is not JSON-RPC was skipped: {e}"
                        )));
                    }
                },
            }
        }
    });
    let writer = std::thread::spawn(move || {
        let mut out = output;
        loop {
            // Complaints from the reader first, then the server's messages.
            while let Ok(m) = notes_rx.try_recv() {
                m.write(&mut out)?;
            }
            match from_server.recv_timeout(std::time::Duration::from_millis(50)) {
                Ok(m) => m.write(&mut out)?,
                Err(e) if e.is_timeout() => continue,
                Err(_) => break,
            }
        }
        while let Ok(m) = notes_rx.try_recv() {
            m.write(&mut out)?;
        }
        Ok(())
    });
    (server, IoThreads { reader, writer })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &str, max: u64) -> Vec<String> {
        let mut r = io::BufReader::new(input.as_bytes());
        let mut out = Vec::new();
        loop {
            match read_frame(&mut r, max) {
                Ok(Frame::Body(b)) => out.push(String::from_utf8_lossy(&b).into_owned()),
                Ok(Frame::Refused(why)) => out.push(format!("refused: {why}")),
                Ok(Frame::End) => return out,
                Err(e) => {
                    out.push(format!("error: {e}"));
                    return out;
                }
            }
        }
    }

    #[test]
    fn oversized_and_bad_frames_are_skipped_in_step() {
        let input = "Content-Length: 2\r\n\r\n{}Content-Length: 12\r\n\r\n0123456789abContent-Length: x\r\n\r\nContent-Length: 3\r\n\r\n[1]";
        assert_eq!(
            frames(input, 10),
            [
                "{}",
                "refused: a message of 12 bytes, more than the 10 bytes accepted",
                "refused: `Content-Length: x` is not a number",
                "[1]"
            ]
        );
    }

    #[test]
    fn a_length_past_64_bits_ends_with_the_stream() {
        let input = "Content-Length: 99999999999999999999999\r\n\r\n{}";
        assert!(frames(input, 10).is_empty());
    }
}
