//! Server-Sent Events on the wire: frame encoding (`frame`), the two ways a stream's frames
//! reach a socket (`writer` for connections this server owns end to end, `body` for streams
//! served through hyper, i.e. HTTP/2 and keep-alive connections), and resume-id parsing.

pub mod body;
pub mod frame;
pub mod writer;

use crate::hub::Resume;
use crate::id::EventId;

/// Picks the resume point: the `Last-Event-ID` header wins over the `lastEventId` query
/// parameter (polyfills that cannot set headers use it); a repeated parameter takes its last
/// value; an empty value means "no resume".
pub fn resume_from(header: Option<&str>, query: Option<&str>) -> Resume {
    let chosen = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .or(query.map(str::trim).filter(|q| !q.is_empty()));
    match chosen {
        None => Resume::Fresh,
        Some(text) => EventId::parse(text).map_or(Resume::Malformed, Resume::After),
    }
}

/// The `token` and last `lastEventId` values of a query string.
pub fn query_params(query: Option<&str>) -> (Option<String>, Option<String>) {
    let (mut token, mut last) = (None, None);
    if let Some(q) = query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            match &*k {
                "token" => token = Some(v.into_owned()),
                "lastEventId" => last = Some(v.into_owned()),
                _ => {}
            }
        }
    }
    (token, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_wins_and_last_query_value_counts() {
        let a = "0190f5b2-7c1e-7a3b-8c4d-1234567890ab";
        let b = "0190f5b2-7c1e-7a3b-8c4d-1234567890ac";
        let (_, q) = query_params(Some(&format!("token=t&lastEventId={a}&lastEventId={b}")));
        assert_eq!(
            resume_from(None, q.as_deref()),
            Resume::After(EventId::parse(b).unwrap())
        );
        assert_eq!(
            resume_from(Some(a), q.as_deref()),
            Resume::After(EventId::parse(a).unwrap())
        );
        assert_eq!(resume_from(Some(""), None), Resume::Fresh);
        assert_eq!(resume_from(Some("garbage"), None), Resume::Malformed);
    }

    #[test]
    fn query_values_are_percent_decoded() {
        let (t, l) = query_params(Some("token=a.b.c&lastEventId=0190f5b2%2D7c1e"));
        assert_eq!(t.as_deref(), Some("a.b.c"));
        assert_eq!(l.as_deref(), Some("0190f5b2-7c1e"));
    }
}
