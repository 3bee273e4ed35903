//! Server-Sent Events text: an event's `id:`, `event:` and `data:` lines and the blank line that
//! ends it, built once and shared by every subscriber that receives the same bytes.

use bytes::Bytes;
use serde_json::json;

/// One event: `id` (when it has one), its type, and `data` (one `data:` line per line of it).
pub fn frame(id: Option<&str>, event: &str, data: &str) -> Bytes {
    let mut text = String::with_capacity(data.len() + event.len() + id.map_or(0, str::len) + 24);
    if let Some(id) = id {
        text.push_str("id: ");
        text.push_str(id);
        text.push('\n');
    }
    text.push_str("event: ");
    text.push_str(event);
    text.push('\n');
    for line in data.split('\n') {
        text.push_str("data: ");
        text.push_str(line);
        text.push('\n');
    }
    text.push('\n');
    Bytes::from(text)
}

/// A stream's last words: an event of its own whose data is a JSON `detail`.
pub fn notice(event: &str, detail: &str) -> Bytes {
    frame(None, event, &json!({ "detail": detail }).to_string())
}

/// The comment that keeps an idle stream's connection alive.
pub const HEARTBEAT: &[u8] = b":heartbeat\n\n";

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::{frame, notice};

    #[test]
    fn an_event_is_its_lines_and_a_blank_line() {
        assert_eq!(
            frame(Some("AA"), "shop.item.created", "{\"a\":1}"),
            Bytes::from("id: AA\nevent: shop.item.created\ndata: {\"a\":1}\n\n")
        );
        assert_eq!(
            frame(None, "x", "a\nb"),
            Bytes::from("event: x\ndata: a\ndata: b\n\n")
        );
        assert_eq!(
            notice("lagged", "behind"),
            Bytes::from("event: lagged\ndata: {\"detail\":\"behind\"}\n\n")
        );
    }
}
