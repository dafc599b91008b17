//! An incremental Server-Sent Events parser, fed whatever each `read()` returned.
//!
//! Events, lines and even a `\r\n` pair may be split across reads; the parser keeps only the
//! unfinished line and the fields of the event being built. Empty `Vec`s do not allocate, so an
//! idle stream costs a few dozen bytes here: that matters when one process holds 9,000 streams.

/// One dispatched event. `event` is empty when the stream sent no `event:` field ("message").
#[derive(Debug)]
pub struct Event<'a> {
    pub event: &'a [u8],
    pub data: &'a [u8],
    /// The `id:` of this event, if it carried one. (The SSE "last event id" persists across
    /// events; the caller keeps it, this parser only reports what each event carried.)
    pub id: Option<&'a [u8]>,
}

#[derive(Default)]
pub struct Parser {
    /// The unfinished line carried over from the previous read.
    line: Vec<u8>,
    event: Vec<u8>,
    data: Vec<u8>,
    id: Vec<u8>,
    has_id: bool,
    has_data: bool,
    /// The previous read ended with `\r`: a `\n` opening the next read belongs to it.
    skip_lf: bool,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `input`, calling `on_event` for every complete event.
    pub fn feed(&mut self, mut input: &[u8], on_event: &mut impl FnMut(Event<'_>)) {
        if self.skip_lf && !input.is_empty() {
            self.skip_lf = false;
            if let Some(rest) = input.strip_prefix(b"\n") {
                input = rest;
            }
        }
        while !input.is_empty() {
            let Some(end) = input.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.line.extend_from_slice(input);
                return;
            };
            let terminator = input[end];
            let rest = &input[end + 1..];
            if self.line.is_empty() {
                self.line_done(&input[..end], on_event);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&input[..end]);
                self.line_done(&line, on_event);
                line.clear();
                self.line = line;
            }
            input = rest;
            if terminator == b'\r' {
                match input.first() {
                    Some(b'\n') => input = &input[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
        }
        self.trim();
    }

    fn line_done(&mut self, line: &[u8], on_event: &mut impl FnMut(Event<'_>)) {
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line[0] == b':' {
            return; // comment: heartbeats and nchan's ": hi"
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"id" if !value.contains(&0) => {
                self.id.clear();
                self.id.extend_from_slice(value);
                self.has_id = true;
            }
            _ => {} // retry and unknown fields are ignored
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        if self.has_data {
            on_event(Event {
                event: &self.event,
                data: &self.data,
                id: self.has_id.then_some(&self.id[..]),
            });
        }
        self.event.clear();
        self.data.clear();
        self.id.clear();
        self.has_id = false;
        self.has_data = false;
    }

    /// Gives back buffers a large event grew, so 9,000 idle streams stay small.
    fn trim(&mut self) {
        const KEEP: usize = 512;
        for buf in [&mut self.line, &mut self.data] {
            if buf.capacity() > KEEP && buf.len() <= KEEP {
                buf.shrink_to(KEEP);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(parser: &mut Parser, input: &[u8], out: &mut Vec<(String, String, Option<String>)>) {
        parser.feed(input, &mut |e| {
            out.push((
                String::from_utf8_lossy(e.event).into_owned(),
                String::from_utf8_lossy(e.data).into_owned(),
                e.id.map(|i| String::from_utf8_lossy(i).into_owned()),
            ))
        });
    }

    const STREAM: &[u8] = b": hi\n\nevent: connected\ndata: {\"channels\":[\"a\"]}\n\n\
id: 01\r\nevent: lt\r\ndata: {\"t\":1,\r\ndata: \"seq\":0}\r\n\r\n\
: heartbeat\n\nid: 02\rdata: x\r\r";

    fn expected() -> Vec<(String, String, Option<String>)> {
        vec![
            ("connected".into(), "{\"channels\":[\"a\"]}".into(), None),
            (
                "lt".into(),
                "{\"t\":1,\n\"seq\":0}".into(),
                Some("01".into()),
            ),
            ("".into(), "x".into(), Some("02".into())),
        ]
    }

    #[test]
    fn whole_stream_in_one_read() {
        let mut p = Parser::new();
        let mut out = Vec::new();
        collect(&mut p, STREAM, &mut out);
        assert_eq!(out, expected());
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        for split in 0..=STREAM.len() {
            let mut p = Parser::new();
            let mut out = Vec::new();
            collect(&mut p, &STREAM[..split], &mut out);
            collect(&mut p, &STREAM[split..], &mut out);
            assert_eq!(out, expected(), "split at {split}");
        }
    }

    #[test]
    fn one_byte_reads_give_the_same_events() {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for b in STREAM {
            collect(&mut p, std::slice::from_ref(b), &mut out);
        }
        assert_eq!(out, expected());
    }

    #[test]
    fn crlf_split_between_reads_is_one_line_break() {
        let mut p = Parser::new();
        let mut out = Vec::new();
        collect(&mut p, b"data: a\r", &mut out);
        collect(&mut p, b"\n", &mut out);
        collect(&mut p, b"\r", &mut out);
        collect(&mut p, b"\ndata: b\n\n", &mut out);
        assert_eq!(
            out,
            vec![("".into(), "a".into(), None), ("".into(), "b".into(), None)]
        );
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        let mut p = Parser::new();
        let mut out = Vec::new();
        collect(&mut p, b"event: x\n\nid: 3\n\n", &mut out);
        assert!(out.is_empty());
    }
}
