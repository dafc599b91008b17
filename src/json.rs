//! Insignificant-whitespace removal for already-validated JSON.
//!
//! Published `data` is forwarded byte-for-byte (numbers such as `1.10` or
//! `12345678901234567890`, key order, escapes and unicode arrive exactly as sent); the only change
//! is that whitespace outside strings is dropped, so a pretty-printed value becomes one SSE
//! `data:` line. The input must already be valid JSON (serde_json's `RawValue` guarantees it);
//! then the only state needed is "inside a string" and "after a backslash".
//!
//! Bench: minify ~0.75 GB/s; validate + minify + frame 2.5–4.8× cheaper than a `Value` round trip.

/// Appends `raw` without insignificant whitespace to `out`.
pub fn minify_into(raw: &[u8], out: &mut Vec<u8>) {
    // Fast path: input with no whitespace byte at all (also none inside strings) is copied in
    // one go; anything else takes the state machine below, which copies runs between the
    // whitespace it drops (~0.75 GB/s here, see benches/frame.rs).
    if !raw
        .iter()
        .any(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
    {
        out.extend_from_slice(raw);
        return;
    }
    out.reserve(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut run_start = 0;
    for (i, &b) in raw.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            out.extend_from_slice(&raw[run_start..i]);
            run_start = i + 1;
        }
    }
    out.extend_from_slice(&raw[run_start..]);
}

/// Convenience wrapper returning a new buffer.
pub fn minify(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    minify_into(raw, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::minify;

    #[test]
    fn keeps_strings_numbers_and_escapes_exactly() {
        let raw = br#" { "a" : [ 1.10 , 12345678901234567890 ],
            "s" : "x  y\"  z\\" , "u":"\u00e9 caf\u00e9 \n" } "#;
        assert_eq!(
            minify(raw),
            br#"{"a":[1.10,12345678901234567890],"s":"x  y\"  z\\","u":"\u00e9 caf\u00e9 \n"}"#
                .to_vec()
        );
    }

    #[test]
    fn scalars_and_unicode_pass_through() {
        for v in [
            &b"\"hello\""[..],
            b"42",
            b"true",
            b"null",
            "\"\u{feff}h\u{1f30d}\"".as_bytes(),
        ] {
            assert_eq!(minify(v), v.to_vec());
        }
        assert_eq!(minify(b"\t[ 1 ,\r\n 2 ]\n"), b"[1,2]".to_vec());
    }
}
