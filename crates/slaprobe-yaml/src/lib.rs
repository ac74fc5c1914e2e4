//! A small YAML node tree in which every node and every mapping key carries
//! its source position, built from yaml-rust2's event parser.
//!
//! yaml-rust2's own `Yaml` tree drops positions, and positions are what make
//! configuration errors actionable. This crate also resolves anchors,
//! aliases and `<<` merge keys, rejects duplicate keys and bounds the tree
//! (nodes, depth). [`de`] deserializes a tree with serde, every error
//! located at a node. The crate knows nothing of slaprobe's configuration:
//! slaprobe's `config` adds the file name to its [`Error`]s and rewrites the
//! tree (`${VAR}`, `<key>_file`) before deserializing it.
//!
//! Why hand-written: no maintained YAML crate gives both line:column for
//! every semantic error found after deserialization and a tree that can be
//! rewritten (environment expansion, secret files) keeping positions; see
//! ARCHITECTURE.md in the slaprobe repository.
#![forbid(unsafe_code)]

pub mod de;

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A problem in one document, at a node (or, with a default [`Pos`], in
/// the document as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub pos: Pos,
    /// Dotted path of the offending key, e.g. `probes[1].slos[0]`; empty
    /// for syntax errors.
    pub key: String,
    pub message: String,
}

impl Error {
    pub fn new(pos: Pos, key: impl Into<String>, message: impl Into<String>) -> Error {
        Error {
            pos,
            key: key.into(),
            message: message.into(),
        }
    }

    /// A problem with the document as a whole.
    pub fn whole(message: impl Into<String>) -> Error {
        Error::new(Pos::default(), "", message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pos.line > 0 {
            write!(f, "{}:{}: ", self.pos.line, self.pos.column)?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// A 1-based source position (0/0 means "no position").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
    /// Character offset, used only to order positions.
    pub index: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        // yaml-rust2 markers: line is 1-based, col is 0-based.
        Pos {
            line: m.line(),
            column: m.col() + 1,
            index: m.index(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub enum Value {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone)]
pub struct Scalar {
    pub text: String,
    /// Plain (unquoted) scalars are type-resolved when a visitor asks for
    /// "anything"; quoted, block and file-read scalars are always strings.
    pub plain: bool,
    /// The value was read from a `<key>_file` (so it is a secret).
    pub from_file: bool,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

impl Node {
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|e| e.key == key),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    pub fn index(&self, i: usize) -> Option<&Node> {
        match &self.value {
            Value::Seq(items) => items.get(i),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if s.plain && is_null(&s.text))
    }

    fn size(&self) -> usize {
        1 + match &self.value {
            Value::Scalar(_) => 0,
            Value::Seq(items) => items.iter().map(Node::size).sum(),
            Value::Map(entries) => entries.iter().map(|e| e.value.size()).sum(),
        }
    }
}

/// YAML 1.2 core-schema null.
pub fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

/// `a` + `b` -> `a.b`; top-level keys have no leading dot.
pub fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub fn join_index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Alias expansion copies subtrees; this bounds the result so a "billion
/// laughs" document is an error, not an out-of-memory kill.
const MAX_NODES: usize = 200_000;
/// Later passes recurse over the tree; bound the depth.
const MAX_DEPTH: usize = 64;

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        /// Keys and values alternate as they arrive.
        pairs: Vec<(Node, Node)>,
        pending_key: Option<Node>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize)>,
    root: Option<Node>,
    nodes: usize,
    errors: Vec<Error>,
}

/// Parse one YAML document into a node tree. An empty document is an empty
/// mapping. Syntax errors are fatal (one per file); duplicate keys and bad
/// merge keys are all collected.
pub fn parse(text: &str) -> Result<Node, Vec<Error>> {
    let mut parser = Parser::new_from_str(text);
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        nodes: 0,
        errors: Vec::new(),
    };
    let mut documents = 0;
    loop {
        let (event, marker) = match parser.next_token() {
            Ok(x) => x,
            Err(e) => {
                return Err(vec![Error::new(
                    Pos::from(*e.marker()),
                    "",
                    format!("YAML syntax error: {}", e.info()),
                )])
            }
        };
        let pos = Pos::from(marker);
        let result = match event {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    Err(Error::new(
                        pos,
                        "",
                        "a file may hold only one YAML document (found a second `---`); \
                         split it into separate files in a directory",
                    ))
                } else {
                    Ok(())
                }
            }
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => Ok(()),
            Event::Alias(id) => match b.anchors.get(&id) {
                Some((node, size)) => {
                    let (node, size) = (node.clone(), *size);
                    b.count(size, pos).map(|()| b.push(node))
                }
                None => Err(Error::new(pos, "", "YAML alias to an unknown anchor")),
            },
            Event::Scalar(text, style, anchor, tag) => {
                b.scalar(text, style, anchor, tag.as_ref(), pos)
            }
            Event::SequenceStart(anchor, tag) => b.open(
                Frame::Seq {
                    pos,
                    anchor,
                    items: Vec::new(),
                },
                tag.as_ref(),
                pos,
            ),
            Event::MappingStart(anchor, tag) => b.open(
                Frame::Map {
                    pos,
                    anchor,
                    pairs: Vec::new(),
                    pending_key: None,
                },
                tag.as_ref(),
                pos,
            ),
            Event::SequenceEnd | Event::MappingEnd => b.close(),
        };
        if let Err(e) = result {
            b.errors.push(e);
            return Err(b.errors);
        }
    }
    if !b.errors.is_empty() {
        return Err(b.errors);
    }
    Ok(b.root.unwrap_or(Node {
        pos: Pos {
            line: 1,
            column: 1,
            index: 0,
        },
        value: Value::Map(Vec::new()),
    }))
}

impl Builder {
    fn count(&mut self, n: usize, pos: Pos) -> Result<(), Error> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(Error::new(
                pos,
                "",
                format!("document too large: more than {MAX_NODES} nodes after alias expansion"),
            ));
        }
        Ok(())
    }

    fn check_tag(&self, tag: Option<&Tag>, pos: Pos) -> Result<bool, Error> {
        match tag {
            None => Ok(false),
            // `!!str 123` forces a string; nothing else is meaningful here.
            Some(t) if t.suffix == "str" && (t.handle == "!!" || t.handle.starts_with("tag:")) => {
                Ok(true)
            }
            Some(t) => Err(Error::new(
                pos,
                self.path(),
                format!(
                    "unsupported YAML tag `{}{}` (only `!!str` is allowed)",
                    t.handle, t.suffix
                ),
            )),
        }
    }

    fn scalar(
        &mut self,
        text: String,
        style: TScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        pos: Pos,
    ) -> Result<(), Error> {
        let forced_str = self.check_tag(tag, pos)?;
        self.count(1, pos)?;
        let node = Node {
            pos,
            value: Value::Scalar(Scalar {
                text,
                plain: style == TScalarStyle::Plain && !forced_str,
                from_file: false,
            }),
        };
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), 1));
        }
        self.push(node);
        Ok(())
    }

    fn open(&mut self, frame: Frame, tag: Option<&Tag>, pos: Pos) -> Result<(), Error> {
        if self.check_tag(tag, pos)? {
            return Err(Error::new(
                pos,
                self.path(),
                "`!!str` can only tag a scalar",
            ));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(Error::new(
                pos,
                self.path(),
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.count(1, pos)?;
        self.stack.push(frame);
        Ok(())
    }

    fn close(&mut self) -> Result<(), Error> {
        let (node, anchor) = match self.stack.pop() {
            Some(Frame::Seq { pos, anchor, items }) => (
                Node {
                    pos,
                    value: Value::Seq(items),
                },
                anchor,
            ),
            Some(Frame::Map {
                pos, anchor, pairs, ..
            }) => (self.finish_map(pos, pairs), anchor),
            None => {
                return Err(Error::whole(
                    "YAML parser produced an unbalanced event stream",
                ))
            }
        };
        if anchor > 0 {
            let size = node.size();
            self.anchors.insert(anchor, (node.clone(), size));
        }
        self.push(node);
        Ok(())
    }

    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                pairs, pending_key, ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => pairs.push((key, node)),
            },
        }
    }

    /// The key path of the node currently being built (from the open frames).
    fn path(&self) -> String {
        let mut path = String::new();
        for frame in &self.stack {
            match frame {
                Frame::Seq { items, .. } => path = join_index(&path, items.len()),
                Frame::Map { pending_key, .. } => {
                    if let Some(Node {
                        value: Value::Scalar(s),
                        ..
                    }) = pending_key
                    {
                        path = join_key(&path, &s.text);
                    }
                }
            }
        }
        path
    }

    /// Keys -> strings, duplicates rejected, then `<<` merges applied (keys
    /// already present win; among merged maps, the earlier one wins).
    fn finish_map(&mut self, start: Pos, pairs: Vec<(Node, Node)>) -> Node {
        let path = self.path();
        // Block mappings report their start oddly; the first key is where
        // a human sees the mapping begin.
        let pos = match pairs.first() {
            Some((k, _)) if k.pos.index < start.index => k.pos,
            _ => start,
        };
        let mut entries: Vec<Entry> = Vec::with_capacity(pairs.len());
        let mut merges = Vec::new();
        for (key, value) in pairs {
            let (text, plain) = match key.value {
                Value::Scalar(s) => (s.text, s.plain),
                _ => {
                    self.errors.push(Error::new(
                        key.pos,
                        path.clone(),
                        "mapping keys must be strings, not lists or mappings (a value starting \
                         with `{` is a YAML mapping: quote templates, e.g. '{{id}}')",
                    ));
                    continue;
                }
            };
            if text == "<<" && plain {
                merges.push(value);
                continue;
            }
            if let Some(first) = entries.iter().find(|e| e.key == text) {
                self.errors.push(Error::new(
                    key.pos,
                    join_key(&path, &text),
                    format!(
                        "duplicate key (first given at line {}, column {})",
                        first.key_pos.line, first.key_pos.column
                    ),
                ));
                continue;
            }
            entries.push(Entry {
                key: text,
                key_pos: key.pos,
                value,
            });
        }
        for merge in merges {
            let sources = match merge.value {
                Value::Map(m) => vec![m],
                Value::Seq(items) => {
                    let mut maps = Vec::new();
                    for item in items {
                        match item.value {
                            Value::Map(m) => maps.push(m),
                            _ => self.errors.push(Error::new(item.pos,
                                join_key(&path, "<<"),
                                "a merge key takes a mapping or a list of mappings (e.g. `<<: *defaults`)",
                            )),
                        }
                    }
                    maps
                }
                Value::Scalar(_) => {
                    self.errors.push(Error::new(
                        merge.pos,
                        join_key(&path, "<<"),
                        "a merge key takes a mapping or a list of mappings (e.g. `<<: *defaults`)",
                    ));
                    Vec::new()
                }
            };
            for source in sources {
                for e in source {
                    if !entries.iter().any(|x| x.key == e.key) {
                        entries.push(e);
                    }
                }
            }
        }
        Node {
            pos,
            value: Value::Map(entries),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The tree on its own; the configuration's error messages built on it
    //! are pinned in `config`'s tests.
    use super::*;

    fn scalar(n: &Node) -> &str {
        match &n.value {
            Value::Scalar(s) => &s.text,
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn nodes_and_keys_carry_their_positions() {
        let root = parse("a:\n  b: [x, 'y']\n").expect("parses");
        let a = root.entry("a").expect("a");
        assert_eq!((a.key_pos.line, a.key_pos.column), (1, 1));
        let b = root.get("a").and_then(|n| n.get("b")).expect("b");
        let y = b.index(1).expect("y");
        assert_eq!(scalar(y), "y");
        assert_eq!((y.pos.line, y.pos.column), (2, 10));
        match &y.value {
            Value::Scalar(s) => assert!(!s.plain, "quoted"),
            _ => unreachable!(),
        }
    }

    #[test]
    fn aliases_and_merge_keys_resolve_and_local_keys_win() {
        let root = parse("base: &b { x: 1, y: 2 }\nuse:\n  <<: *b\n  y: 3\n").expect("parses");
        let used = root.get("use").expect("use");
        assert_eq!(used.get("x").map(scalar), Some("1"));
        assert_eq!(used.get("y").map(scalar), Some("3"));
    }

    #[test]
    fn every_duplicate_key_is_reported_with_the_first_position() {
        let errors = parse("a: 1\nb: 2\na: 3\nb: 4\n").expect_err("duplicates");
        let shown: Vec<String> = errors.iter().map(Error::to_string).collect();
        assert_eq!(
            shown,
            [
                "3:1: a: duplicate key (first given at line 1, column 1)",
                "4:1: b: duplicate key (first given at line 2, column 1)",
            ]
        );
    }

    #[test]
    fn an_alias_bomb_is_an_error_not_an_allocation() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let prev = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let errors = parse(&doc).expect_err("too large");
        assert!(errors[0].message.contains("too large"), "{:?}", errors[0]);
    }

    #[test]
    fn deserialization_errors_point_at_the_node() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct S {
            #[allow(dead_code)]
            n: u64,
        }
        let root = parse("n: 1\nm: 2\n").expect("parses");
        let e = de::from_node::<S>(&root)
            .expect_err("unknown key")
            .located();
        assert_eq!((e.pos.line, e.pos.column, e.key.as_str()), (2, 1, "m"));
        let root = parse("n: 'one'\n").expect("parses");
        let e = de::from_node::<S>(&root).expect_err("wrong type").located();
        assert_eq!((e.pos.line, e.pos.column, e.key.as_str()), (1, 4, "n"));
    }
}
