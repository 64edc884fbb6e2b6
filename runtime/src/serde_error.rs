//! serde_json's errors about inputs, as clients see them: an issue at the path in the input
//! the error is about, with serde's message without its position in the text.

use crate::error::Error;
use crate::validate::{Issue, PathSegment};

/// serde's error about valid JSON text as an `invalid_type` issue, at its path in the text:
/// the value it is about for type and range errors; for a custom error (e.g. from a
/// `deserialize_with` function), which has no position of its own, the object or array being
/// read when it happened.
pub(crate) fn serde_issue(text: &str, error: &serde_json::Error) -> Error {
    let message = serde_message(error);
    let path = if error.line() == 0 {
        Vec::new()
    } else {
        path_at(text, error.line(), error.column())
    };
    Error::invalid_input(vec![Issue::new(path, "invalid_type", message)])
}

/// serde_json's error message without its position in the text (meaningless to a client
/// whose input was re-encoded on the way).
pub(crate) fn serde_message(error: &serde_json::Error) -> String {
    let mut message = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    if message.ends_with(&suffix) {
        message.truncate(message.len() - suffix.len());
    }
    message
}

/// The path of the innermost value of `text` (valid JSON) holding the byte serde_json's error
/// position points at (`line` from 1; `column` counts bytes: the last byte read is the
/// `column`-th of its line).
fn path_at(text: &str, line: usize, column: usize) -> Vec<PathSegment> {
    let bytes = text.as_bytes();
    let line_start = if line <= 1 {
        0
    } else {
        bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line - 2)
            .map_or(bytes.len(), |(i, _)| i + 1)
    };
    let mut at = (line_start + column).saturating_sub(1);
    // An object or array of the wrong type is reported before its first byte was read: the
    // position is that of the byte before it.
    if bytes
        .get(at)
        .is_some_and(|b| matches!(b, b':' | b',' | b'[') || b.is_ascii_whitespace())
    {
        at += 1;
        while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
    }
    let mut path = Vec::new();
    let mut scan = Scan { bytes, i: 0, at };
    scan.value(&mut path);
    path
}

/// A walk over valid JSON looking for the value that holds byte `at`.
struct Scan<'a> {
    bytes: &'a [u8],
    i: usize,
    at: usize,
}

impl Scan<'_> {
    fn peek(&mut self) -> Option<u8> {
        while let Some(b) = self.bytes.get(self.i) {
            if !b.is_ascii_whitespace() {
                return Some(*b);
            }
            self.i += 1;
        }
        None
    }

    /// Walks the next value; `true` when it holds `at` (then `path` leads to it).
    fn value(&mut self, path: &mut Vec<PathSegment>) -> bool {
        let Some(first) = self.peek() else {
            return false;
        };
        let start = self.i;
        match first {
            b'{' | b'[' => {
                self.i += 1;
                let mut index = 0;
                loop {
                    match self.peek() {
                        None => return false,
                        Some(b'}' | b']') => {
                            self.i += 1;
                            break;
                        }
                        Some(b',') => {
                            self.i += 1;
                            continue;
                        }
                        Some(_) => {}
                    }
                    let segment = if first == b'{' {
                        let key_start = self.i;
                        self.string();
                        let key = serde_json::from_slice::<String>(&self.bytes[key_start..self.i])
                            .unwrap_or_default();
                        if self.peek() == Some(b':') {
                            self.i += 1;
                        }
                        PathSegment::Key(key)
                    } else {
                        index += 1;
                        PathSegment::Index(index - 1)
                    };
                    path.push(segment);
                    if self.value(path) {
                        return true;
                    }
                    path.pop();
                }
            }
            b'"' => self.string(),
            _ => {
                while self
                    .bytes
                    .get(self.i)
                    .is_some_and(|b| !matches!(b, b',' | b']' | b'}') && !b.is_ascii_whitespace())
                {
                    self.i += 1;
                }
            }
        }
        (start..self.i).contains(&self.at)
    }

    /// Steps over a string (at its opening quote).
    fn string(&mut self) {
        self.i += 1;
        while let Some(b) = self.bytes.get(self.i) {
            self.i += 1;
            match b {
                b'\\' => self.i += 1,
                b'"' => return,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        n: u8,
        kind: Kind,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    enum Kind {
        A,
        B,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        items: Vec<Inner>,
    }

    fn issue_of(text: &str) -> (Vec<PathSegment>, String) {
        let e = serde_json::from_str::<Outer>(text).expect_err("serde refuses it");
        let error = serde_issue(text, &e);
        let issue = &error.issues().expect("issues")[0];
        (issue.path.clone(), issue.message.clone())
    }

    fn key(k: &str) -> PathSegment {
        PathSegment::Key(k.into())
    }

    #[test]
    fn serde_errors_point_at_the_value_they_are_about() {
        use PathSegment::Index;
        let cases: Vec<(&str, Vec<PathSegment>)> = vec![
            (
                r#"{"name":"x","items":[[1]]}"#,
                vec![key("items"), Index(0)],
            ),
            (r#"{"name":"x","items": [1]}"#, vec![key("items"), Index(0)]),
            (r#"{"name":5,"items":[]}"#, vec![key("name")]),
            (
                r#"{"name":"x","items":[{"n":1,"kind":"A"},{"n":300,"kind":"A"}]}"#,
                vec![key("items"), Index(1), key("n")],
            ),
            (
                r#"{"name":"x","items":[{"n":1,"kind":"C"}]}"#,
                vec![key("items"), Index(0), key("kind")],
            ),
            // A missing field: the object that lacks it.
            (
                r#"{"name":"x","items":[{"n":1}]}"#,
                vec![key("items"), Index(0)],
            ),
            (r#"{"name":"x"}"#, vec![]),
            (
                "{\n  \"name\": \"x\",\n  \"items\": [\n    {\"n\": \"\\\"]}\", \"kind\": \"A\"}\n  ]\n}",
                vec![key("items"), Index(0), key("n")],
            ),
            (r#"{"na\"me":"x","items":{"a":1}}"#, vec![key("items")]),
            (
                r#"{"name":"x","items":[{"n":1,"kind":"A"}, {"n":1,"kind":{}}]}"#,
                vec![key("items"), Index(1), key("kind")],
            ),
        ];
        for (text, path) in cases {
            assert_eq!(issue_of(text).0, path, "{text}");
        }
        let (_, message) = issue_of(r#"{"name":5,"items":[]}"#);
        assert_eq!(message, "invalid type: integer `5`, expected a string");
    }
}
