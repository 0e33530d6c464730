//! The first pass over a flow file: where each node of the YAML document starts, so that
//! errors found after parsing can still point at `file:line:col`, and the limits a flow
//! file must meet before serde reads it.
//!
//! [`Locations::scan`] reads the document's events once (saphyr-parser, which streams) and
//! keeps an arena with one entry per node (its key's and its value's position) plus one map
//! from (parent node, key or index) to the child, where each key is stored once. A lookup
//! walks a path from the root, one hash lookup per segment. So the index costs a bounded
//! number of bytes per node, and a node costs at least one byte of the file: the index is
//! linear in the file's size whatever its shape. (The index it replaces stored the full
//! path of every node: quadratic in the nesting depth and in key lengths, 905 MB and 25 s
//! for 1 MB of nested lists.) The checks ask only for paths a few segments deep, but every
//! node is indexed: the same map finds duplicate keys in every mapping of the document.
//!
//! The same pass refuses, at the offending node:
//! - a second document (serde would read it whole, then refuse it);
//! - nesting deeper than [`MAX_DEPTH`] (serde recurses; the normalized flow must stay
//!   within serde_json's own limit of 128 when a manifest is read back);
//! - more than [`MAX_NODES`] nodes, counting an alias as every node it stands for: the
//!   bound on what serde builds next (it holds every event of the document, about 100 bytes
//!   each, and then the values), on alias bombs ("billion laughs") and on an anchor of
//!   many nodes aliased many times;
//! - an alias inside the node it names (a recursive structure);
//! - a key given twice in one mapping: YAML readers keep the last one silently, so a second
//!   `train:` step would replace the first one unseen.
//!
//! Only a document that passes goes to serde.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;

use saphyr_parser::{Event, Parser, Span};

use super::{FlowError, FlowErrors};

/// How deep collections may nest in a flow file.
pub const MAX_DEPTH: usize = 100;

/// How many nodes (keys, values, list items; an alias counting as all it stands for) a
/// flow file may hold. A flow of a hundred steps holds a few thousand.
pub const MAX_NODES: usize = 100_000;

/// One step of a path into a YAML document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1; 0 when unknown (shown as `file:line`).
    pub col: usize,
}

/// Where one indexed node is written.
#[derive(Debug)]
struct Node {
    /// Its key, when it is the value of a mapping entry.
    key: Option<Pos>,
    /// The node itself.
    value: Pos,
}

/// Positions of the keys and values of one YAML document (see the module doc).
#[derive(Debug, Default)]
pub struct Locations {
    /// Every node outside keys, in document order; the root is 0.
    nodes: Vec<Node>,
    /// (parent, segment) -> child.
    children: HashMap<(u32, Seg), u32>,
}

/// A collection that is open while the scan reads its content.
struct Open {
    /// Its node in the arena; None inside a key (a mapping or list used as a key).
    id: Option<u32>,
    /// Its anchor, if it has one.
    anchor: usize,
    /// The node count when it started, to size it for its aliases.
    start: usize,
    /// Its key or index in its parent (None for the root and inside keys).
    seg: Option<Seg>,
    /// It is a key itself (a mapping or list used as a key).
    is_key: bool,
    kind: OpenKind,
}

enum OpenKind {
    Map {
        /// The key read, waiting for its value: its text (None for a key that is not
        /// text) and its position.
        key: Option<(Option<String>, Pos)>,
    },
    Seq {
        next: usize,
    },
}

/// The scan's state.
struct Scan<'a> {
    file: &'a Path,
    out: Locations,
    open: Vec<Open>,
    /// Nodes met so far, aliases counted as what they stand for.
    count: usize,
    /// Anchor -> how many nodes it stands for, once its node is complete.
    sizes: HashMap<usize, usize>,
    /// Anchor -> its text, for anchored scalars (an alias may be a key).
    texts: HashMap<usize, String>,
    /// Documents started so far.
    documents: usize,
    errors: Vec<FlowError>,
}

/// What a node-starting event is, for the scan.
enum Start<'e> {
    Scalar(&'e str),
    Alias(usize),
    Collection { map: bool },
}

/// Why a scan stops before the end of the document.
struct Stop;

impl Locations {
    /// Scans `text` (see the module doc): its positions, or every problem found, each
    /// with its position in `file`.
    pub fn scan(text: &str, file: &Path) -> Result<Self, FlowErrors> {
        let mut scan = Scan {
            file,
            out: Self::default(),
            open: Vec::new(),
            count: 0,
            sizes: HashMap::new(),
            texts: HashMap::new(),
            documents: 0,
            errors: Vec::new(),
        };
        let mut parser = Parser::new_from_str(text);
        while let Some(next) = parser.next_event() {
            let (event, span) = match next {
                Ok(e) => e,
                Err(e) => {
                    let m = e.marker();
                    let pos = Pos {
                        line: m.line(),
                        col: m.col() + 1,
                    };
                    scan.errors.push(FlowError::new(file, pos, e.info()));
                    break;
                }
            };
            if scan.event(event, span).is_err() {
                break;
            }
        }
        if scan.errors.is_empty() {
            Ok(scan.out)
        } else {
            scan.errors.sort_by_key(|e| e.pos);
            Err(FlowErrors(scan.errors))
        }
    }

    /// Where the key at `path` is written (the last segment must be a key), else where its
    /// value starts, else the nearest ancestor.
    pub fn key(&self, path: &[Seg]) -> Pos {
        match self.find(path) {
            Some((n, id)) if n == path.len() => {
                let node = &self.nodes[id as usize];
                node.key.unwrap_or(node.value)
            }
            Some((_, id)) => self.nodes[id as usize].value,
            None => Pos { line: 1, col: 1 },
        }
    }

    /// Where the value at `path` starts, else the nearest ancestor that was indexed.
    pub fn value(&self, path: &[Seg]) -> Pos {
        self.find(path).map_or(Pos { line: 1, col: 1 }, |(_, id)| {
            self.nodes[id as usize].value
        })
    }

    /// The deepest indexed node along `path`: how many segments matched, and the node.
    fn find(&self, path: &[Seg]) -> Option<(usize, u32)> {
        if self.nodes.is_empty() {
            return None;
        }
        let mut at = 0;
        for (n, seg) in path.iter().enumerate() {
            match self.children.get(&(at, seg.clone())) {
                Some(child) => at = *child,
                None => return Some((n, at)),
            }
        }
        Some((path.len(), at))
    }
}

impl Scan<'_> {
    fn fail(&mut self, pos: Pos, msg: impl Into<String>) -> Stop {
        self.errors.push(FlowError::new(self.file, pos, msg));
        Stop
    }

    fn event(&mut self, event: Event, span: Span) -> Result<(), Stop> {
        let pos = Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
        };
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(self.fail(
                        pos,
                        "a flow file holds one YAML document, and a second one starts here",
                    ));
                }
                Ok(())
            }
            Event::Scalar(text, _, anchor, _) => {
                self.start(pos, Start::Scalar(&text), anchor)?;
                if anchor != 0 {
                    self.texts.insert(anchor, text.into_owned());
                }
                Ok(())
            }
            Event::Alias(anchor) => self.start(pos, Start::Alias(anchor), 0),
            Event::SequenceStart(anchor, _) => {
                self.start(pos, Start::Collection { map: false }, anchor)
            }
            Event::MappingStart(anchor, _) => {
                self.start(pos, Start::Collection { map: true }, anchor)
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(done) = self.open.pop() {
                    if done.anchor != 0 {
                        self.sizes.insert(done.anchor, self.count - done.start);
                    }
                    // A collection used as a key: its mapping now waits for the value.
                    if done.is_key
                        && let Some(Open {
                            kind: OpenKind::Map { key },
                            ..
                        }) = self.open.last_mut()
                    {
                        *key = Some((None, pos));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A node starts at `pos`: count it, check its depth, and index it (or record it as
    /// the key its mapping waits on).
    fn start(&mut self, pos: Pos, start: Start, anchor: usize) -> Result<(), Stop> {
        let weight = match start {
            Start::Alias(a) => match self.sizes.get(&a) {
                Some(n) => *n,
                None => {
                    return Err(self.fail(
                        pos,
                        "this alias is inside the node it names: recursive structures are not supported",
                    ));
                }
            },
            _ => 1,
        };
        self.count = self.count.saturating_add(weight);
        if self.count > MAX_NODES {
            let what = if matches!(start, Start::Alias(_)) {
                format!("this alias stands for {weight} nodes, which takes the document")
            } else {
                "the document reaches".to_string()
            };
            return Err(self.fail(
                pos,
                format!(
                    "{what} past {MAX_NODES} nodes (keys, values and list items, an alias counting as all it stands for): a flow file describes a flow; keep data in files the steps read"
                ),
            ));
        }
        if self.open.len() >= MAX_DEPTH {
            return Err(self.fail(
                pos,
                format!("the document nests deeper than {MAX_DEPTH} levels here"),
            ));
        }
        let is_collection = matches!(start, Start::Collection { .. });
        // A node read while its mapping waits for a key is that key.
        let is_key = matches!(
            self.open.last(),
            Some(Open {
                kind: OpenKind::Map { key: None },
                ..
            })
        );
        let (id, seg) = self.place(pos, &start, is_collection);
        if let Start::Collection { map } = start {
            self.open.push(Open {
                id,
                anchor,
                seg,
                is_key,
                // The count includes this node: its size counts it.
                start: self.count - 1,
                kind: if map {
                    OpenKind::Map { key: None }
                } else {
                    OpenKind::Seq { next: 0 }
                },
            });
        } else if anchor != 0 {
            self.sizes.insert(anchor, 1);
        }
        Ok(())
    }

    /// Indexes a node that starts at `pos` under the open collection: its id, or None
    /// when it is a key (recorded in its mapping) or inside one; with `keep`, a copy of
    /// its segment (for a collection, so that messages can name what is inside it).
    fn place(&mut self, pos: Pos, start: &Start, keep: bool) -> (Option<u32>, Option<Seg>) {
        let Some(parent) = self.open.last_mut() else {
            self.out.nodes.push(Node {
                key: None,
                value: pos,
            });
            return (Some(0), None);
        };
        let Some(parent_id) = parent.id else {
            return (None, None);
        };
        let (seg, key_pos) = match &mut parent.kind {
            OpenKind::Map { key } => match key.take() {
                None => {
                    // This node is a key.
                    let text = match start {
                        Start::Scalar(s) => Some(s.to_string()),
                        Start::Alias(a) => self.texts.get(a).cloned(),
                        Start::Collection { .. } => return (None, None),
                    };
                    *key = Some((text, pos));
                    return (None, None);
                }
                Some((Some(text), kpos)) => (Seg::Key(text), Some(kpos)),
                // The value of a key that is not text: not indexed.
                Some((None, _)) => return (None, None),
            },
            OpenKind::Seq { next } => {
                *next += 1;
                (Seg::Index(*next - 1), None)
            }
        };
        let id = self.out.nodes.len() as u32;
        let kept = keep.then(|| seg.clone());
        let twice = match self.out.children.entry((parent_id, seg)) {
            Entry::Occupied(e) => Some((*e.get(), e.key().1.clone())),
            Entry::Vacant(e) => {
                e.insert(id);
                None
            }
        };
        if let Some((first, Seg::Key(name))) = twice {
            let first_line = self.out.nodes[first as usize].key.unwrap_or_default().line;
            let at = key_pos.unwrap_or(pos);
            let what = self.named(&name);
            self.errors.push(FlowError::new(
                self.file,
                at,
                format!(
                    "{what} is defined twice (first at line {first_line}): YAML would keep only the last one; remove or rename one"
                ),
            ));
        }
        self.out.nodes.push(Node {
            key: key_pos,
            value: pos,
        });
        (Some(id), kept)
    }

    /// How to name `key` of the mapping open last, in a message: `step 'train'`,
    /// `parameter 'alpha'`, `env variable 'X'`, `field 'run' of step 'train'`, else `key 'k'`.
    fn named(&self, key: &str) -> String {
        let path: Vec<&str> = self
            .open
            .iter()
            .skip(1)
            .map(|o| match &o.seg {
                Some(Seg::Key(k)) => k.as_str(),
                _ => "",
            })
            .collect();
        match path.as_slice() {
            ["steps"] => format!("step '{key}'"),
            ["parameters"] => format!("parameter '{key}'"),
            ["steps", step] => format!("field '{key}' of step '{step}'"),
            ["defaults" | "env"] => format!("field '{key}' of `{}`", path[0]),
            [.., "env"] => format!("env variable '{key}'"),
            [.., "secrets"] => format!("secret variable '{key}'"),
            _ => format!("key '{key}'"),
        }
    }
}

/// Builds a path: `path!["steps", name, "next", 0]`.
macro_rules! yaml_path {
    ($($seg:expr),* $(,)?) => {
        Vec::from([$($crate::flow::locate::IntoSeg::into_seg($seg)),*])
    };
}
pub(crate) use yaml_path as path;

/// Anything that can be one segment of a path.
pub trait IntoSeg {
    /// The segment.
    fn into_seg(self) -> Seg;
}

impl IntoSeg for &str {
    fn into_seg(self) -> Seg {
        Seg::Key(self.to_string())
    }
}

impl IntoSeg for &String {
    fn into_seg(self) -> Seg {
        Seg::Key(self.clone())
    }
}

impl IntoSeg for &&str {
    fn into_seg(self) -> Seg {
        Seg::Key(self.to_string())
    }
}

impl IntoSeg for usize {
    fn into_seg(self) -> Seg {
        Seg::Index(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_values_and_items() {
        let text = "name: x\nsteps:\n  start:\n    run: a\n    next: [b, c]\n  b: {run: x}\n";
        let loc = Locations::scan(text, Path::new("f")).unwrap();
        assert_eq!(loc.key(&path!["steps", "start"]), Pos { line: 3, col: 3 });
        assert_eq!(
            loc.value(&path!["steps", "start", "run"]),
            Pos { line: 4, col: 10 }
        );
        assert_eq!(
            loc.value(&path!["steps", "start", "next", 1]),
            Pos { line: 5, col: 15 }
        );
        assert_eq!(
            loc.value(&path!["steps", "b", "run"]),
            Pos { line: 6, col: 12 }
        );
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(
            loc.value(&path!["steps", "b", "nope"]),
            Pos { line: 6, col: 6 }
        );
    }

    #[test]
    fn keys_that_are_collections_keep_the_index_in_step() {
        let text = "a: {[k]: [v], ? {m: 1} : {n: 2}, b: 1, b: 2}\n";
        let err = Locations::scan(text, Path::new("f")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "f:1:40: key 'b' is defined twice (first at line 1): YAML would keep only the last one; remove or rename one"
        );
        let loc = Locations::scan("a: {[k]: [v], b: 1}\n", Path::new("f")).unwrap();
        assert_eq!(loc.value(&path!["a", "b"]), Pos { line: 1, col: 18 });
    }
}
