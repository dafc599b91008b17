//! Just enough HTTP/1.1 for a load generator: response heads (parsed by `httparse`), the three
//! body framings, and a keep-alive request/response client for tokens and publishing.
//!
//! No pooling, no redirects, no TLS: every target is on loopback, and every byte this code does
//! not spend is a byte of CPU the server under test gets.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// The longest response body the keep-alive client reads (token and publish answers are small).
const MAX_BODY: usize = 1 << 20;

pub fn err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub body: Body,
    /// The server said `Connection: close` (or spoke HTTP/1.0).
    pub close: bool,
    pub content_type: String,
}

/// How a response body is framed, and how much of it is left.
#[derive(Debug)]
pub enum Body {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

/// Parses a response head from the start of `buf`: `Ok(None)` while incomplete, else the head and
/// its length in bytes.
pub fn parse_head(buf: &[u8]) -> io::Result<Option<(Head, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(err("response head over 16 KiB"))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(err(format!("bad response head: {e}"))),
    };
    let status = resp.code.unwrap_or(0);
    let mut close = resp.version == Some(0);
    let mut length = None;
    let mut chunked = false;
    let mut content_type = String::new();
    for h in resp.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<u64>()
                    .map_err(|_| err("bad content-length"))?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().ends_with("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if h.name.eq_ignore_ascii_case("content-type") {
            content_type = value.to_owned();
        }
    }
    let body = if chunked {
        Body::Chunked(Chunked::default())
    } else if let Some(n) = length {
        Body::Length(n)
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Body::Length(0)
    } else {
        Body::UntilClose
    };
    Ok(Some((
        Head {
            status,
            body,
            close,
            content_type,
        },
        len,
    )))
}

impl Body {
    /// Decodes `input`, passing body bytes to `out`; `Ok(true)` once the body is complete.
    pub fn decode(&mut self, input: &[u8], out: &mut impl FnMut(&[u8])) -> io::Result<bool> {
        match self {
            Body::Length(left) => {
                let take = (*left).min(input.len() as u64) as usize;
                if take > 0 {
                    out(&input[..take]);
                }
                *left -= take as u64;
                Ok(*left == 0)
            }
            Body::Chunked(c) => c.decode(input, out),
            Body::UntilClose => {
                if !input.is_empty() {
                    out(input);
                }
                Ok(false)
            }
        }
    }

    pub fn is_done(&self) -> bool {
        match self {
            Body::Length(left) => *left == 0,
            Body::Chunked(c) => matches!(c.state, ChunkState::Done),
            Body::UntilClose => false,
        }
    }
}

/// The `Transfer-Encoding: chunked` state machine, fed arbitrary slices.
#[derive(Debug, Default)]
pub struct Chunked {
    state: ChunkState,
}

#[derive(Debug, Default)]
enum ChunkState {
    /// Reading the hex size; `digits` counts them (a size line needs at least one).
    #[default]
    SizeStart,
    Size {
        size: u64,
        digits: u8,
    },
    /// After `;`: a chunk extension, skipped up to the line end.
    Extension {
        size: u64,
    },
    SizeLf {
        size: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// After the last chunk: trailer lines until an empty one. `empty` while the current line
    /// has no bytes yet.
    Trailer {
        empty: bool,
    },
    TrailerLf {
        empty: bool,
    },
    Done,
}

impl Chunked {
    pub fn decode(&mut self, mut input: &[u8], out: &mut impl FnMut(&[u8])) -> io::Result<bool> {
        use ChunkState::*;
        while !input.is_empty() {
            if let Data { left } = &mut self.state {
                let take = (*left).min(input.len() as u64) as usize;
                out(&input[..take]);
                *left -= take as u64;
                input = &input[take..];
                if *left == 0 {
                    self.state = DataCr;
                }
                continue;
            }
            let b = input[0];
            input = &input[1..];
            self.state = match self.state {
                SizeStart | Size { .. } => {
                    let (size, digits) = match self.state {
                        Size { size, digits } => (size, digits),
                        _ => (0, 0),
                    };
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            if digits >= 15 {
                                return Err(err("chunk size too large"));
                            }
                            let v = (b as char).to_digit(16).unwrap_or(0) as u64;
                            Size {
                                size: size * 16 + v,
                                digits: digits + 1,
                            }
                        }
                        _ if digits == 0 => return Err(err("chunk size line without digits")),
                        b';' | b' ' | b'\t' => Extension { size },
                        b'\r' => SizeLf { size },
                        b'\n' => Self::after_size(size),
                        _ => return Err(err("bad byte in chunk size")),
                    }
                }
                Extension { size } => match b {
                    b'\r' => SizeLf { size },
                    b'\n' => Self::after_size(size),
                    _ => Extension { size },
                },
                SizeLf { size } => match b {
                    b'\n' => Self::after_size(size),
                    _ => return Err(err("chunk size line not ended by CRLF")),
                },
                DataCr => match b {
                    b'\r' => DataLf,
                    b'\n' => SizeStart,
                    _ => return Err(err("chunk data not followed by CRLF")),
                },
                DataLf => match b {
                    b'\n' => SizeStart,
                    _ => return Err(err("chunk data not followed by CRLF")),
                },
                Trailer { empty } => match b {
                    b'\r' => TrailerLf { empty },
                    b'\n' if empty => Done,
                    b'\n' => Trailer { empty: true },
                    _ => Trailer { empty: false },
                },
                TrailerLf { empty } => match b {
                    b'\n' if empty => Done,
                    b'\n' => Trailer { empty: true },
                    _ => return Err(err("trailer line not ended by CRLF")),
                },
                Done => return Err(err("bytes after the last chunk")),
                Data { .. } => unreachable!("handled above"),
            };
            if matches!(self.state, Done) {
                return if input.is_empty() {
                    Ok(true)
                } else {
                    Err(err("bytes after the last chunk"))
                };
            }
        }
        Ok(matches!(self.state, Done))
    }

    fn after_size(size: u64) -> ChunkState {
        if size == 0 {
            ChunkState::Trailer { empty: true }
        } else {
            ChunkState::Data { left: size }
        }
    }
}

/// A keep-alive HTTP/1.1 connection for request/response traffic (tokens, publishing).
/// Reconnects when the server closed it; retries a request only when asked to.
pub struct Client {
    addr: SocketAddr,
    host: String,
    conn: Option<TcpStream>,
    buf: Vec<u8>,
    req: Vec<u8>,
}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Client {
    pub fn new(addr: SocketAddr, host: &str) -> Self {
        Self {
            addr,
            host: host.to_owned(),
            conn: None,
            buf: Vec::with_capacity(1024),
            req: Vec::with_capacity(512),
        }
    }

    /// Sends one request and reads its response. `idempotent` requests are retried once on a
    /// fresh connection when a reused one turns out to be closed; a publish is never retried, so
    /// a retry can never be the cause of a duplicate the generator reports.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
        idempotent: bool,
    ) -> io::Result<Response> {
        use std::fmt::Write as _;
        let mut head = String::with_capacity(160 + headers.len());
        let _ = write!(
            head,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{headers}Content-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        self.req.clear();
        self.req.extend_from_slice(head.as_bytes());
        self.req.extend_from_slice(body);
        let reused = self.conn.is_some();
        match self.exchange().await {
            Ok(r) => Ok(r),
            Err(e) if reused && idempotent => {
                self.conn = None;
                self.exchange()
                    .await
                    .map_err(|e2| err(format!("{e}; retry: {e2}")))
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    async fn exchange(&mut self) -> io::Result<Response> {
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.conn = Some(s);
        }
        let conn = self.conn.as_mut().expect("connected above");
        conn.write_all(&self.req).await?;
        self.buf.clear();
        let (head, head_len) = loop {
            if let Some(h) = parse_head(&self.buf)? {
                break h;
            }
            if conn.read_buf(&mut self.buf).await? == 0 {
                return Err(err("connection closed before the response head"));
            }
        };
        let mut decoder = head.body;
        let mut body = Vec::new();
        let mut done = decoder.decode(&self.buf[head_len..], &mut |b| body.extend_from_slice(b))?;
        let mut chunk = [0u8; 4096];
        while !done {
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                if matches!(decoder, Body::UntilClose) {
                    self.conn = None;
                    break;
                }
                return Err(err("connection closed inside the response body"));
            }
            done = decoder.decode(&chunk[..n], &mut |b| body.extend_from_slice(b))?;
            if body.len() > MAX_BODY {
                return Err(err("response body over 1 MiB"));
            }
        }
        if head.close {
            self.conn = None;
        }
        Ok(Response {
            status: head.status,
            body,
        })
    }
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters pass through).
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(body: &mut Body, parts: &[&[u8]]) -> io::Result<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        let mut done = false;
        for p in parts {
            done = body.decode(p, &mut |b| out.extend_from_slice(b))?;
        }
        Ok((out, done))
    }

    const CHUNKED: &[u8] = b"7\r\ndata: a\r\n3;ext=1\r\n\n\n\n\r\n0\r\nX-Trailer: 1\r\n\r\n";

    #[test]
    fn chunked_body_decodes_at_every_split() {
        for split in 0..=CHUNKED.len() {
            let mut body = Body::Chunked(Chunked::default());
            let (out, done) = decode_all(&mut body, &[&CHUNKED[..split], &CHUNKED[split..]])
                .unwrap_or_else(|e| panic!("split {split}: {e}"));
            assert_eq!(out, b"data: a\n\n\n", "split {split}");
            assert!(done, "split {split}");
        }
    }

    #[test]
    fn chunked_body_rejects_garbage() {
        let mut body = Body::Chunked(Chunked::default());
        assert!(decode_all(&mut body, &[b"zz\r\n"]).is_err());
        let mut body = Body::Chunked(Chunked::default());
        assert!(decode_all(&mut body, &[b"2\r\nabX"]).is_err());
    }

    #[test]
    fn chunked_body_open_ended_is_not_done() {
        let mut body = Body::Chunked(Chunked::default());
        let (out, done) = decode_all(&mut body, &[b"5\r\nhello\r\n", b"1\r\n"]).unwrap();
        assert_eq!(out, b"hello");
        assert!(!done);
    }

    #[test]
    fn heads_pick_the_framing() {
        let (h, len) = parse_head(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nrest")
            .unwrap()
            .unwrap();
        assert_eq!(h.status, 200);
        assert!(matches!(h.body, Body::Chunked(_)));
        assert_eq!(h.content_type, "text/event-stream");
        assert_eq!(len, 80);
        let (h, _) =
            parse_head(b"HTTP/1.1 201 Created\r\nContent-Length: 12\r\nConnection: close\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(matches!(h.body, Body::Length(12)));
        assert!(h.close);
        let (h, _) = parse_head(b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(matches!(h.body, Body::UntilClose));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-")
            .unwrap()
            .is_none());
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_query("a.b-c_d~e"), "a.b-c_d~e");
        assert_eq!(encode_query("a b/c+="), "a%20b%2Fc%2B%3D");
    }
}
