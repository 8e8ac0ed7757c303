//! The server's transport on standard input and output: LSP's framing (`Content-Length`, then a
//! JSON-RPC message) read and written on threads of their own, as lsp-server's own transport
//! does, except that a frame that is not a message is the client's mistake and not the end of
//! the session. A lone UTF-16 surrogate escaped in a string (`"\ud800"`, which JSON's grammar
//! allows and Rust's strings cannot hold) is read as U+FFFD, the replacement character; any other
//! body that does not parse is reported in the editor's log and skipped.

use crossbeam_channel::bounded;
use lsp_server::{Connection, Message, Notification};
use std::io::{self, BufRead};
use std::thread::JoinHandle;

/// The reading and writing threads, joined at the end of the session.
pub struct IoThreads {
    reader: JoinHandle<io::Result<()>>,
    writer: JoinHandle<io::Result<()>>,
}

impl IoThreads {
    /// Waits for both threads; the first failure of either is the session's.
    pub fn join(self) -> io::Result<()> {
        let joined = |handle: JoinHandle<io::Result<()>>| {
            handle.join().unwrap_or_else(|_| Err(io::Error::other("a transport thread panicked")))
        };
        let read = joined(self.reader);
        joined(self.writer).and(read)
    }
}

/// A connection over standard input and output.
pub fn stdio() -> (Connection, IoThreads) {
    let (to_client, outgoing) = bounded::<Message>(0);
    let writer = std::thread::spawn(move || {
        let stdout = io::stdout();
        let mut out = stdout.lock();
        for message in outgoing {
            message.write(&mut out)?;
        }
        Ok(())
    });
    let (incoming, from_client) = bounded::<Message>(0);
    let log = to_client.clone();
    let reader = std::thread::spawn(move || {
        let stdin = io::stdin();
        let mut input = stdin.lock();
        while let Some(body) = read_frame(&mut input)? {
            match parse(&body) {
                Ok(message) => {
                    let exit = matches!(&message, Message::Notification(n) if n.method == "exit");
                    if incoming.send(message).is_err() || exit {
                        break;
                    }
                }
                Err(error) => {
                    let text = format!("graphc-lsp skipped a message that is not JSON-RPC: {error}");
                    let params = serde_json::json!({ "type": 2, "message": text });
                    if log.send(Message::Notification(Notification::new("window/logMessage".into(), params))).is_err() {
                        break;
                    }
                }
            }
        }
        Ok(())
    });
    (Connection { sender: to_client, receiver: from_client }, IoThreads { reader, writer })
}

/// The body of the next frame, or `None` at the end of the input. Headers other than
/// `Content-Length` are read and ignored; a frame without one cannot be skipped, and ends the
/// session with an error, as it does for every LSP server.
fn read_frame(input: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut length = None;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let header = line.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            if length.is_some() {
                break;
            }
            continue;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            let parsed = value.trim().parse::<usize>().map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, format!("Content-Length `{}` is not a number", value.trim()))
            })?;
            length = Some(parsed);
        }
    }
    let mut body = vec![0; length.unwrap_or(0)];
    input.read_exact(&mut body)?;
    Ok(Some(body))
}

/// A message from a frame's body; a lone surrogate escape read as U+FFFD.
fn parse(body: &[u8]) -> Result<Message, serde_json::Error> {
    match serde_json::from_slice(body) {
        Ok(message) => Ok(message),
        Err(error) => match replace_lone_surrogates(body) {
            Some(repaired) => serde_json::from_slice(&repaired),
            None => Err(error),
        },
    }
}

/// `body` with every `\uD800`-`\uDFFF` escape that is not half of a pair replaced by `\uFFFD`;
/// `None` when it has none.
fn replace_lone_surrogates(body: &[u8]) -> Option<Vec<u8>> {
    let escape = |at: usize| -> Option<u16> {
        let hex = body.get(at..at + 6)?;
        if hex.get(..2)? != b"\\u" {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(hex.get(2..)?).ok()?, 16).ok()
    };
    let mut out = Vec::with_capacity(body.len());
    let mut replaced = false;
    let mut at = 0;
    while let Some(&byte) = body.get(at) {
        if byte != b'\\' {
            out.push(byte);
            at += 1;
            continue;
        }
        match escape(at) {
            Some(0xD800..=0xDBFF) if matches!(escape(at + 6), Some(0xDC00..=0xDFFF)) => {
                out.extend_from_slice(body.get(at..at + 12).unwrap_or_default());
                at += 12;
            }
            Some(0xD800..=0xDFFF) => {
                out.extend_from_slice(b"\\uFFFD");
                replaced = true;
                at += 6;
            }
            // Any other escape, `\\` included, is copied whole so that its second byte is not
            // read as the start of another.
            _ => {
                out.extend_from_slice(body.get(at..at + 2).unwrap_or(&body[at..]));
                at += 2;
            }
        }
    }
    replaced.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_become_replacement_characters_and_pairs_stay() {
        let body = br#"{"a": "x\ud800y \udc00 \ud83d\ude00 \\ud800"}"#;
        let repaired = replace_lone_surrogates(body).expect("two were lone");
        let value: serde_json::Value = serde_json::from_slice(&repaired).expect("parses");
        assert_eq!(value["a"], "x\u{fffd}y \u{fffd} \u{1f600} \\ud800");
        assert_eq!(replace_lone_surrogates(br#"{"a": "\ud83d\ude00"}"#), None);
    }

    #[test]
    fn frames_are_read_by_their_length_whatever_other_headers_say() {
        let mut input: &[u8] = b"Content-Type: x\r\ncontent-length: 2\r\n\r\n{}Content-Length: 1\r\n\r\n7";
        assert_eq!(read_frame(&mut input).unwrap(), Some(b"{}".to_vec()));
        assert_eq!(read_frame(&mut input).unwrap(), Some(b"7".to_vec()));
        assert_eq!(read_frame(&mut input).unwrap(), None);
    }
}
