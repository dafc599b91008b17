//! The Developer Console: a static page and its assets, embedded in the binary so that the
//! console works on a box with no network but the server itself (no CDN, no web fonts).
//!
//! The page holds no secret and can do nothing by itself: every action it offers goes through
//! `/push/tokens` or `/push/publish` with the API key the person pastes in, so serving it
//! unauthenticated grants nothing. `castbrick-push.js` is the client helper from `clients/js/`,
//! byte-for-byte, so the console exercises the same code that applications ship.

const INDEX_HTML: &[u8] = include_bytes!("console/index.html");
const CONSOLE_JS: &[u8] = include_bytes!("console/console.js");
const CONSOLE_CSS: &[u8] = include_bytes!("console/console.css");
const CLIENT_JS: &[u8] = include_bytes!("../../clients/js/castbrick-push.js");

const HTML: &str = "text/html; charset=utf-8";
// Module scripts are refused by browsers unless served with a JavaScript MIME type.
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The content type and body of a console asset, or `None` when `path` (the request path,
/// without the query string) is not one.
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    match path {
        "/console" | "/console/" => Some((HTML, INDEX_HTML)),
        "/console/console.js" => Some((JS, CONSOLE_JS)),
        "/console/console.css" => Some((CSS, CONSOLE_CSS)),
        "/console/castbrick-push.js" => Some((JS, CLIENT_JS)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_with_its_type() {
        for (path, ty, needle) in [
            ("/console", HTML, "<title>Developer Console"),
            ("/console/", HTML, "/console/console.js"),
            (
                "/console/console.js",
                JS,
                "from '/console/castbrick-push.js'",
            ),
            ("/console/console.css", CSS, "--accent"),
            ("/console/castbrick-push.js", JS, "export function connect"),
        ] {
            let (got_ty, body) = asset(path).unwrap_or_else(|| panic!("{path} missing"));
            assert_eq!(got_ty, ty, "{path}");
            let text = std::str::from_utf8(body).expect("assets are UTF-8");
            assert!(text.contains(needle), "{path} lacks {needle:?}");
        }
    }

    #[test]
    fn anything_else_is_not_an_asset() {
        for path in [
            "/",
            "/console.js",
            "/console//",
            "/console/index.html",
            "/console/../Cargo.toml",
            "/consoleX",
        ] {
            assert!(asset(path).is_none(), "{path}");
        }
    }

    #[test]
    fn the_page_loads_nothing_from_outside_the_server() {
        for path in ["/console", "/console/console.js", "/console/console.css"] {
            let text = std::str::from_utf8(asset(path).unwrap().1).unwrap();
            for external in ["http://", "https://", "//fonts.", "@import"] {
                assert!(!text.contains(external), "{path} references {external:?}");
            }
        }
    }
}
