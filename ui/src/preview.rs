//! What an artifact's first bytes are, told without running any of them: an image by its
//! magic number (never SVG, which can hold script), a Python pickle described from its
//! opcodes (never unpickled), JSON, CSV, other text, or binary.

use serde::Serialize;

/// How much of an artifact a preview shows.
pub const PREVIEW_BYTES: usize = 64 * 1024;

/// What kind of content an artifact holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// UTF-8 text.
    Text,
    /// Text that is JSON.
    Json,
    /// Text that is comma-separated values.
    Csv,
    /// A PNG, JPEG, GIF or WebP image.
    Image,
    /// A Python pickle.
    Pickle,
    /// Anything else.
    Binary,
    /// A folder artifact (a tar of it).
    Dir,
}

/// An image type the page may show: only raster formats, which cannot run script.
pub fn image_type(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// The kind of a file artifact named `name` whose content starts with `head`
/// (`complete`: `head` is the whole content).
pub fn sniff(name: &str, head: &[u8], complete: bool) -> Kind {
    if image_type(head).is_some() {
        return Kind::Image;
    }
    if head.first() == Some(&0x80) && head.get(1).is_some_and(|p| (2..=5).contains(p)) {
        return Kind::Pickle;
    }
    let Some(text) = utf8_prefix(head, complete) else {
        return Kind::Binary;
    };
    if text.contains('\0') {
        return Kind::Binary;
    }
    let trimmed = text.trim_start();
    let lower = name.to_ascii_lowercase();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && (!complete || serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok())
    {
        return Kind::Json;
    }
    if lower.ends_with(".json") && !complete {
        return Kind::Json;
    }
    if lower.ends_with(".csv") || looks_like_csv(text) {
        return Kind::Csv;
    }
    Kind::Text
}

/// `head` as text, when it is UTF-8 but for a character cut at its end (when it is only
/// the start of the content).
pub fn utf8_prefix(head: &[u8], complete: bool) -> Option<&str> {
    match std::str::from_utf8(head) {
        Ok(s) => Some(s),
        Err(e) if !complete && e.error_len().is_none() => {
            Some(std::str::from_utf8(&head[..e.valid_up_to()]).expect("checked"))
        }
        Err(_) => None,
    }
}

/// At least two lines, the first five with the same number (one or more) of commas.
fn looks_like_csv(text: &str) -> bool {
    let counts: Vec<usize> = text
        .lines()
        .take(5)
        .map(|l| l.matches(',').count())
        .collect();
    counts.len() >= 2 && counts[0] > 0 && counts.iter().all(|c| *c == counts[0])
}

/// What a pickle holds, read from its first opcodes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PickleInfo {
    /// The pickle protocol.
    pub protocol: u8,
    /// The Python type of the top object: `int`, `str`, `list`, … or the class (or
    /// function) that builds it, `module.name`.
    #[serde(rename = "type")]
    pub ty: String,
    /// The value, for a lone number, string, bool or None.
    pub value: Option<String>,
}

// The pickle opcodes this reads (CPython's Lib/pickletools.py names them).
const PROTO: u8 = 0x80;
const FRAME: u8 = 0x95;
const MEMOIZE: u8 = 0x94;
const STOP: u8 = b'.';
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE: u8 = b'X';
const STACK_GLOBAL: u8 = 0x93;
const GLOBAL: u8 = b'c';

/// Describes the pickle starting `head`, or None when it does not start as one.
pub fn describe_pickle(head: &[u8]) -> Option<PickleInfo> {
    let mut r = Ops { b: head, i: 0 };
    if r.byte()? != PROTO {
        return None;
    }
    let protocol = r.byte()?;
    if r.peek() == Some(FRAME) {
        r.take(9)?;
    }
    let (ty, value) = match r.byte()? {
        b'N' => ("None".into(), Some("None".into())),
        0x88 => ("bool".into(), Some("True".into())),
        0x89 => ("bool".into(), Some("False".into())),
        b'K' => ("int".into(), Some(r.byte()?.to_string())),
        b'M' => (
            "int".into(),
            Some(u16::from_le_bytes(r.take(2)?.try_into().ok()?).to_string()),
        ),
        b'J' => (
            "int".into(),
            Some(i32::from_le_bytes(r.take(4)?.try_into().ok()?).to_string()),
        ),
        0x8a => {
            let n = r.byte()? as usize;
            let bytes = r.take(n)?;
            let value = (n <= 16).then(|| {
                let mut buf = [if bytes.last().is_some_and(|b| b & 0x80 != 0) {
                    0xff
                } else {
                    0
                }; 16];
                buf[..n].copy_from_slice(bytes);
                i128::from_le_bytes(buf).to_string()
            });
            ("int".into(), value)
        }
        b'G' => (
            "float".into(),
            Some(f64::from_be_bytes(r.take(8)?.try_into().ok()?).to_string()),
        ),
        op @ (SHORT_BINUNICODE | BINUNICODE) => {
            let first = r.string(op)?;
            r.skip_memo();
            // Protocol 4 names a class by two strings and STACK_GLOBAL.
            if let Some(op2 @ (SHORT_BINUNICODE | BINUNICODE)) = r.peek() {
                r.byte();
                let second = r.string(op2)?;
                r.skip_memo();
                if r.peek() == Some(STACK_GLOBAL) {
                    return Some(PickleInfo {
                        protocol,
                        ty: format!("{first}.{second}"),
                        value: None,
                    });
                }
                return Some(PickleInfo {
                    protocol,
                    ty: "tuple".into(),
                    value: None,
                });
            }
            let value = (r.peek() == Some(STOP)).then(|| first.clone());
            ("str".into(), value)
        }
        GLOBAL => {
            let module = r.line()?;
            let name = r.line()?;
            (format!("{module}.{name}"), None)
        }
        b']' => ("list".into(), None),
        b'}' => ("dict".into(), None),
        b')' => ("tuple".into(), None),
        0x8f => ("set".into(), None),
        b'C' | b'B' | 0x8e => ("bytes".into(), None),
        b'(' => ("tuple".into(), None),
        _ => ("object".into(), None),
    };
    Some(PickleInfo {
        protocol,
        ty,
        value,
    })
}

/// A cursor over pickle opcodes; every read is bounds-checked (None past the end).
struct Ops<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Ops<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn byte(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.i..self.i.checked_add(n)?)?;
        self.i += n;
        Some(s)
    }

    fn skip_memo(&mut self) {
        if self.peek() == Some(MEMOIZE) {
            self.i += 1;
        }
    }

    /// The string after opcode `op` (its length prefix read here), cut to 200 characters.
    fn string(&mut self, op: u8) -> Option<String> {
        let n = if op == SHORT_BINUNICODE {
            self.byte()? as usize
        } else {
            u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize
        };
        let s = String::from_utf8_lossy(self.take(n)?);
        Some(s.chars().take(200).collect())
    }

    /// A newline-ended text argument (protocol 0 style).
    fn line(&mut self) -> Option<String> {
        let rest = self.b.get(self.i..)?;
        let end = rest.iter().take(512).position(|b| *b == b'\n')?;
        self.i += end + 1;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_told_by_magic_numbers_and_svg_is_not_an_image() {
        assert_eq!(sniff("x", b"\x89PNG\r\n\x1a\nrest", true), Kind::Image);
        assert_eq!(sniff("x", &[0xff, 0xd8, 0xff, 0xe0], true), Kind::Image);
        assert_eq!(sniff("x", b"RIFF\0\0\0\0WEBPVP8 ", true), Kind::Image);
        assert_eq!(
            sniff("a.svg", b"<svg onload=alert(1)></svg>", true),
            Kind::Text
        );
    }

    #[test]
    fn text_kinds() {
        assert_eq!(sniff("m", b"{\"a\": 1}", true), Kind::Json);
        assert_eq!(sniff("m", b"{not json", true), Kind::Text);
        assert_eq!(sniff("m", b"[1, 2", false), Kind::Json);
        assert_eq!(sniff("t", b"a,b\n1,2\n3,4\n", true), Kind::Csv);
        assert_eq!(sniff("t.csv", b"a\n1\n", true), Kind::Csv);
        assert_eq!(sniff("t", b"hello\nworld", true), Kind::Text);
        assert_eq!(sniff("t", b"a\0b", true), Kind::Binary);
        assert_eq!(sniff("t", &[0xc3], true), Kind::Binary);
        // A character cut at the end of a partial read is still text.
        assert_eq!(
            sniff("t", "caf\u{e9}".as_bytes()[..4].as_ref(), false),
            Kind::Text
        );
    }

    #[test]
    fn pickles_are_described_from_their_opcodes() {
        // pickle.dumps(0.97, protocol=4)
        let f = b"\x80\x04\x95\n\x00\x00\x00\x00\x00\x00\x00G?\xef\x0a=p\xa3\xd7\n.";
        let d = describe_pickle(f).unwrap();
        assert_eq!((d.protocol, d.ty.as_str()), (4, "float"));
        assert_eq!(d.value.as_deref(), Some("0.97"));
        // pickle.dumps("baseline", protocol=4)
        let s = b"\x80\x04\x95\x0c\x00\x00\x00\x00\x00\x00\x00\x8c\x08baseline\x94.";
        let d = describe_pickle(s).unwrap();
        assert_eq!(
            (d.ty.as_str(), d.value.as_deref()),
            ("str", Some("baseline"))
        );
        // A class instance: module and name, then STACK_GLOBAL.
        let c = b"\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94.";
        let d = describe_pickle(c).unwrap();
        assert_eq!(d.ty, "collections.OrderedDict");
        assert_eq!(d.value, None);
        assert_eq!(
            describe_pickle(b"\x80\x04K\x2a.").unwrap().value.as_deref(),
            Some("42")
        );
        assert_eq!(describe_pickle(b"\x80\x04]\x94.").unwrap().ty, "list");
        // Cut short anywhere: no panic, no description.
        for n in 0..c.len() {
            let _ = describe_pickle(&c[..n]);
        }
        assert_eq!(describe_pickle(b"\x80\x04\x8c\xff"), None);
        assert_eq!(describe_pickle(b"not a pickle"), None);
    }
}
