//! An event stream (Server-Sent Events) in a version's names: each `data:` line holds one
//! event as JSON, whose `data` is renamed; everything else passes as it is.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde_json::Value;

use super::rename::Names;

/// The longest line kept while waiting for its end; an event is far smaller.
const MAX_LINE: usize = 4 * 1024 * 1024;

pub fn events_to_version(body: Body, names: Names) -> Body {
    let mut pending = BytesMut::new();
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk?;
        pending.extend_from_slice(&chunk);
        let mut out = BytesMut::with_capacity(pending.len());
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line = pending.split_to(end + 1);
            out.extend_from_slice(&line_to_version(&names, &line));
        }
        if pending.len() > MAX_LINE {
            out.extend_from_slice(&pending.split());
        }
        Ok::<Bytes, axum::Error>(out.freeze())
    });
    Body::from_stream(stream)
}

/// One line, with its `\n`.
fn line_to_version(names: &Names, line: &[u8]) -> Bytes {
    let Some(json) = line
        .strip_prefix(b"data: ")
        .or_else(|| line.strip_prefix(b"data:"))
    else {
        return Bytes::copy_from_slice(line);
    };
    let Ok(mut event) = serde_json::from_slice::<Value>(json) else {
        return Bytes::copy_from_slice(line);
    };
    let Some(serde_json::Value::Object(data)) = event.get_mut("data") else {
        return Bytes::copy_from_slice(line);
    };
    names.fields_to_version(data);
    let mut renamed = b"data: ".to_vec();
    if serde_json::to_writer(&mut renamed, &event).is_err() {
        return Bytes::copy_from_slice(line);
    }
    renamed.push(b'\n');
    Bytes::from(renamed)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use futures::StreamExt;
    use herald_bus::schema::versions::DocumentVersion;

    use super::*;

    #[tokio::test]
    async fn data_lines_are_renamed_across_chunks() {
        let names = Names::of(&DocumentVersion {
            rename: BTreeMap::from([("name".into(), "title".into())]),
            ..DocumentVersion::default()
        });
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(
                b"event: petstore.product.created\nid: AA\ndata: {\"data\":{\"na",
            )),
            Ok(Bytes::from_static(
                b"me\":\"Kite\"},\"type\":\"petstore.product.created\"}\n\n:keep-alive\n\n",
            )),
        ];
        let body = events_to_version(Body::from_stream(futures::stream::iter(chunks)), names);
        let mut text = Vec::new();
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            text.extend_from_slice(&chunk.unwrap_or_default());
        }
        assert_eq!(
            String::from_utf8_lossy(&text),
            "event: petstore.product.created\nid: AA\ndata: {\"data\":{\"title\":\"Kite\"},\"type\":\"petstore.product.created\"}\n\n:keep-alive\n\n"
        );
    }
}
