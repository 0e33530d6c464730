//! Where each node of a YAML document starts, so that errors found after parsing can
//! still point at `file:line:col`.
//!
//! serde gives positions only for syntax and type errors; the semantic checks
//! (unknown step names, cycles, …) look positions up here by the node's path.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

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
    /// Column, from 1.
    pub col: usize,
}

/// Positions of the keys and values of one YAML document, by path.
#[derive(Debug, Default)]
pub struct Locations {
    keys: HashMap<Vec<Seg>, Pos>,
    values: HashMap<Vec<Seg>, Pos>,
}

enum Frame {
    Map { path: Vec<Seg>, key: Option<String> },
    Seq { path: Vec<Seg>, next: usize },
}

impl Locations {
    /// Indexes `text`. A document that does not parse gives what was indexed before the
    /// error; serde reports the error itself.
    pub fn index(text: &str) -> Self {
        let mut out = Self::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        while let Some(Ok((event, span))) = parser.next_event() {
            let pos = Pos {
                line: span.start.line(),
                col: span.start.col() + 1,
            };
            let starts_node = matches!(
                event,
                Event::Scalar(..)
                    | Event::Alias(_)
                    | Event::SequenceStart(..)
                    | Event::MappingStart(..)
            );
            let mut path = None;
            if starts_node {
                match stack.last_mut() {
                    Some(Frame::Map { path: p, key }) => match key.take() {
                        None => {
                            // This node is a key.
                            if let Event::Scalar(s, ..) = &event {
                                let mut kp = p.clone();
                                kp.push(Seg::Key(s.to_string()));
                                out.keys.insert(kp, pos);
                                *key = Some(s.to_string());
                            } else {
                                *key = Some(String::new());
                            }
                            continue;
                        }
                        Some(k) => {
                            let mut vp = p.clone();
                            vp.push(Seg::Key(k));
                            path = Some(vp);
                        }
                    },
                    Some(Frame::Seq { path: p, next }) => {
                        let mut vp = p.clone();
                        vp.push(Seg::Index(*next));
                        *next += 1;
                        path = Some(vp);
                    }
                    None => path = Some(Vec::new()),
                }
            }
            let path = path.unwrap_or_default();
            match event {
                Event::Scalar(..) | Event::Alias(_) if starts_node => {
                    out.values.insert(path, pos);
                }
                Event::MappingStart(..) => {
                    out.values.insert(path.clone(), pos);
                    stack.push(Frame::Map { path, key: None });
                }
                Event::SequenceStart(..) => {
                    out.values.insert(path.clone(), pos);
                    stack.push(Frame::Seq { path, next: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        out
    }

    /// Where the key at `path` starts (the last segment must be a key), else where its
    /// value starts, else the nearest ancestor.
    pub fn key(&self, path: &[Seg]) -> Pos {
        self.keys
            .get(path)
            .copied()
            .unwrap_or_else(|| self.value(path))
    }

    /// Where the value at `path` starts, else the nearest ancestor that was indexed.
    pub fn value(&self, path: &[Seg]) -> Pos {
        (0..=path.len())
            .rev()
            .find_map(|n| {
                self.values
                    .get(&path[..n])
                    .or_else(|| self.keys.get(&path[..n]))
            })
            .copied()
            .unwrap_or(Pos { line: 1, col: 1 })
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
        let loc = Locations::index(text);
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
}
