//! Error texts for HTTP statuses that keep the server's reason: a bounded, printable excerpt of
//! the response body, as the reference client puts the body text into its `HttpError`.

/// The most characters of a response body an error message quotes.
pub const MAX_REASON_CHARS: usize = 200;

/// A printable excerpt of `body` (at most [`MAX_REASON_CHARS`] characters, control characters
/// and runs of whitespace folded into one space, `…` when cut), or `None` for a blank body.
pub fn body_excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_REASON_CHARS * 4)]);
    let mut out = String::new();
    let mut chars = 0;
    let mut cut = false;
    for word in text.split(|c: char| c.is_whitespace() || c.is_control()) {
        if word.is_empty() {
            continue;
        }
        for c in (!out.is_empty())
            .then_some(' ')
            .into_iter()
            .chain(word.chars())
        {
            if chars == MAX_REASON_CHARS {
                cut = true;
                break;
            }
            out.push(c);
            chars += 1;
        }
        if cut {
            break;
        }
    }
    cut |= body.len() > MAX_REASON_CHARS * 4 && chars == MAX_REASON_CHARS;
    if cut {
        out.push('…');
    }
    (!out.is_empty()).then_some(out)
}

/// `<what>: Status code '<status>'`, followed by `: <excerpt of the body>` when it has one.
pub fn status_error(what: &str, status: u16, body: &[u8]) -> String {
    match body_excerpt(body) {
        Some(reason) => format!("{what}: Status code '{status}': {reason}"),
        None => format!("{what}: Status code '{status}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn a_blank_body_adds_nothing_to_the_status() {
        assert_eq!(
            status_error("Send failed", 413, b""),
            "Send failed: Status code '413'"
        );
        assert_eq!(
            status_error("Send failed", 413, b" \r\n\t"),
            "Send failed: Status code '413'"
        );
    }

    #[test]
    fn the_reason_is_folded_onto_one_line() {
        let body = b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\n</html>";
        assert_eq!(
            status_error("Send failed", 413, body),
            "Send failed: Status code '413': <html> <head><title>413 Request Entity Too Large</title></head> </html>"
        );
    }

    #[test]
    fn a_long_or_binary_body_is_cut_to_a_bounded_printable_excerpt() {
        let long = vec![b'x'; 1 << 20];
        let excerpt = body_excerpt(&long).unwrap();
        assert_eq!(excerpt.chars().count(), MAX_REASON_CHARS + 1);
        assert!(excerpt.ends_with('…'));
        let binary = [0u8, 0xff, 0x1e, b'o', b'k', 0x07];
        assert_eq!(body_excerpt(&binary).unwrap(), "\u{fffd} ok");
    }
}
