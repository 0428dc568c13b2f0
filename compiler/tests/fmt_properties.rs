//! Properties of `donmaic fmt` over generated YAML: whatever layout a
//! document is written in, formatting keeps its data and its comments, is
//! idempotent, and never refuses valid YAML; random edits of real workflow
//! files never make it panic.

use donmai_compiler::fmt::format_workflow;
use donmai_grammar::yaml::{self, Node, NodeKind};
use proptest::prelude::*;

mod common;
use common::cases;
use std::path::Path;

/// A YAML value to write in some layout.
#[derive(Clone, Debug)]
enum Tree {
    Scalar(ScalarText),
    Map(Vec<(String, Tree)>),
    Seq(Vec<Tree>),
}

#[derive(Clone, Debug)]
enum ScalarText {
    Plain(String),
    Single(String),
    Double(String),
    /// Words on several lines.
    MultiLinePlain(Vec<String>),
    MultiLineDouble(Vec<String>),
    /// `|` or `>` with a chomping indicator and maybe an explicit
    /// indentation; lines with their extra indentation.
    Block {
        folded: bool,
        chomping: &'static str,
        explicit: bool,
        lines: Vec<(usize, String)>,
    },
}

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a",
        "id",
        "step",
        "x1",
        "true",
        "null",
        "12",
        "0x1F",
        "1.5",
        "yes",
        "ünï",
        "a-b",
        "a.b",
        "{{ trigger.x }}",
        "a: b",
        "#no",
        "don't",
        "k",
        "v",
        "-x",
        "?q",
        "~",
    ])
    .prop_map(str::to_string)
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "id", "type", "config", "next", "a", "b", "c", "name", "steps", "spec", "x y",
    ])
    .prop_map(str::to_string)
}

fn plain_safe(word: &str) -> bool {
    word.chars()
        .all(|c| c.is_alphanumeric() || "-._ü".contains(c))
        && !word.starts_with(['-', '?'])
}

fn scalar() -> impl Strategy<Value = ScalarText> {
    prop_oneof![
        4 => word().prop_map(|w| if plain_safe(&w) { ScalarText::Plain(w) } else { ScalarText::Double(w) }),
        1 => word().prop_map(ScalarText::Single),
        1 => word().prop_map(ScalarText::Double),
        1 => prop::collection::vec("[a-z]{1,5}( [a-z]{1,5})?", 2..4).prop_map(ScalarText::MultiLinePlain),
        1 => prop::collection::vec(prop::sample::select(vec!["a", "b c", "\\n", "\\\\", "é", "\\ ", ""]).prop_map(str::to_string), 2..4)
            .prop_map(ScalarText::MultiLineDouble),
        2 => (
            any::<bool>(),
            prop::sample::select(vec!["", "-", "+"]),
            any::<bool>(),
            prop::collection::vec((0usize..3, "[a-z #:]{0,6}"), 1..5),
        )
            .prop_map(|(folded, chomping, explicit, lines)| ScalarText::Block { folded, chomping, explicit, lines }),
    ]
}

fn tree() -> impl Strategy<Value = Tree> {
    scalar()
        .prop_map(Tree::Scalar)
        .prop_recursive(4, 40, 4, |inner| {
            prop_oneof![
                prop::collection::vec((key(), inner.clone()), 1..4).prop_map(|entries| {
                    let mut seen = std::collections::HashSet::new();
                    Tree::Map(
                        entries
                            .into_iter()
                            .filter(|(k, _)| seen.insert(k.clone()))
                            .collect(),
                    )
                }),
                prop::collection::vec(inner, 1..4).prop_map(Tree::Seq),
            ]
        })
}

/// Layout decisions, consumed one by one while writing.
struct Choices {
    bytes: Vec<u8>,
    at: usize,
}

impl Choices {
    fn next(&mut self, range: u8) -> u8 {
        let byte = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        byte % range.max(1)
    }

    fn chance(&mut self, in_four: u8) -> bool {
        self.next(4) < in_four
    }
}

struct Writer {
    out: String,
    choices: Choices,
    comments: usize,
    anchors: usize,
}

impl Writer {
    /// An anchor or a tag for the next node, followed by a space, sometimes.
    fn properties(&mut self) -> String {
        match self.choices.next(16) {
            0 => {
                self.anchors += 1;
                format!("&a{} ", self.anchors)
            }
            1 => "!t ".to_string(),
            _ => String::new(),
        }
    }

    /// An alias of an anchor written before, sometimes.
    fn alias(&mut self) -> Option<String> {
        if self.anchors == 0 || self.choices.next(8) != 0 {
            return None;
        }
        let anchors = u8::try_from(self.anchors).unwrap_or(u8::MAX);
        Some(format!("*a{}", 1 + self.choices.next(anchors)))
    }

    /// A comment at the end of the current line, sometimes.
    fn maybe_trailing_comment(&mut self) {
        if self.choices.chance(1) {
            self.comments += 1;
            let spaces = 1 + usize::from(self.choices.next(3));
            self.out
                .push_str(&format!("{}# note {}", " ".repeat(spaces), self.comments));
        }
    }

    /// Blank lines and comment lines before an item at `indent`, sometimes.
    fn maybe_comment_lines(&mut self, indent: usize) {
        if self.choices.chance(1) {
            self.out.push('\n');
        }
        if self.choices.chance(1) {
            self.comments += 1;
            let shift = usize::from(self.choices.next(3));
            self.out.push_str(&format!(
                "{}# line {}\n",
                " ".repeat(indent + shift),
                self.comments
            ));
        }
    }

    fn scalar_inline(&mut self, scalar: &ScalarText, indent: usize) -> bool {
        match scalar {
            ScalarText::Plain(w) => self.out.push_str(w),
            ScalarText::Single(w) => self.out.push_str(&format!("'{}'", w.replace('\'', "''"))),
            ScalarText::Double(w) => self.out.push_str(&format!("{w:?}")),
            ScalarText::MultiLinePlain(lines) => {
                let continuation = indent + 1 + usize::from(self.choices.next(3));
                self.out
                    .push_str(&lines.join(&format!("\n{}", " ".repeat(continuation))));
            }
            ScalarText::MultiLineDouble(lines) => {
                let continuation = indent + 1 + usize::from(self.choices.next(3));
                self.out.push('"');
                self.out
                    .push_str(&lines.join(&format!("\n{}", " ".repeat(continuation))));
                self.out.push('"');
            }
            ScalarText::Block { .. } => return false,
        }
        true
    }

    /// A block scalar whose parent collection is at `parent` and whose
    /// content goes at `content`.
    fn block_scalar(&mut self, scalar: &ScalarText, parent: usize, content: usize) {
        let ScalarText::Block {
            folded,
            chomping,
            explicit,
            lines,
        } = scalar
        else {
            return;
        };
        let needs_indicator = lines
            .iter()
            .find(|(_, text)| !text.trim().is_empty())
            .is_some_and(|(extra, text)| *extra > 0 || text.starts_with(' '));
        let explicit = *explicit || needs_indicator;
        self.out.push(if *folded { '>' } else { '|' });
        self.out.push_str(chomping);
        if explicit {
            self.out.push_str(&(content - parent).to_string());
        }
        self.maybe_trailing_comment();
        self.out.push('\n');
        for (extra, text) in lines {
            if text.is_empty() {
                self.out.push('\n');
            } else {
                self.out
                    .push_str(&format!("{}{text}\n", " ".repeat(content + extra)));
            }
        }
        if self.choices.chance(1) {
            self.out.push('\n');
        }
    }

    /// Writes `tree` as the value after `key:` or `- ` at `indent`.
    fn value(&mut self, tree: &Tree, indent: usize, after_dash: bool) {
        let step = 1 + usize::from(self.choices.next(4));
        match tree {
            Tree::Scalar(_) if let Some(alias) = self.alias() => {
                self.out.push(' ');
                self.out.push_str(&alias);
                self.maybe_trailing_comment();
                self.out.push('\n');
            }
            Tree::Scalar(scalar @ ScalarText::Block { .. }) => {
                self.out.push(' ');
                let properties = self.properties();
                self.out.push_str(&properties);
                let parent = if after_dash { indent - 2 } else { indent };
                self.block_scalar(scalar, parent, parent + step);
            }
            Tree::Scalar(scalar) => {
                let properties = self.properties();
                if !after_dash && self.choices.chance(1) {
                    self.out
                        .push_str(&format!("\n{}{properties}", " ".repeat(indent + step)));
                    self.scalar_inline(scalar, indent + step);
                } else {
                    self.out.push(' ');
                    self.out.push_str(&properties);
                    self.scalar_inline(scalar, indent);
                }
                self.maybe_trailing_comment();
                self.out.push('\n');
            }
            Tree::Map(entries) if self.flow_ok(tree) && self.choices.chance(1) => {
                self.out.push(' ');
                let properties = self.properties();
                self.out.push_str(&properties);
                self.flow(tree, indent + step);
                self.maybe_trailing_comment();
                self.out.push('\n');
            }
            Tree::Seq(_) if self.flow_ok(tree) && self.choices.chance(1) => {
                self.out.push(' ');
                let properties = self.properties();
                self.out.push_str(&properties);
                self.flow(tree, indent + step);
                self.maybe_trailing_comment();
                self.out.push('\n');
            }
            Tree::Map(entries) if after_dash && self.choices.chance(3) => {
                // Compact: the first key on the dash's line.
                self.out.push(' ');
                self.map_entries(entries, indent, true);
            }
            Tree::Seq(items) if after_dash && self.choices.chance(2) => {
                self.out.push(' ');
                self.seq_items(items, indent, true);
            }
            Tree::Map(entries) => {
                let properties = self.properties();
                self.out.push(' ');
                self.out.push_str(properties.trim_end());
                self.maybe_trailing_comment();
                self.out.push('\n');
                self.map_entries(entries, indent + step, false);
            }
            Tree::Seq(items) => {
                let properties = self.properties();
                self.out.push(' ');
                self.out.push_str(properties.trim_end());
                self.maybe_trailing_comment();
                self.out.push('\n');
                // Indentless under a key, sometimes. Not when the first item
                // is a sequence: the grammar then starts the outer
                // sequence's span at the item (saphyr reports it there), and
                // the formatter refuses what it cannot place exactly.
                let first_is_seq = matches!(items.first(), Some(Tree::Seq(_)));
                let indentless = !after_dash && !first_is_seq && self.choices.chance(1);
                let at = if indentless { indent } else { indent + step };
                self.seq_items(items, at, false);
            }
        }
    }

    fn map_entries(&mut self, entries: &[(String, Tree)], indent: usize, first_inline: bool) {
        for (i, (key, value)) in entries.iter().enumerate() {
            if !(i == 0 && first_inline) {
                self.maybe_comment_lines(indent);
                self.out.push_str(&" ".repeat(indent));
            }
            if plain_safe(key) {
                self.out.push_str(key);
            } else {
                self.out.push_str(&format!("{key:?}"));
            }
            self.out.push(':');
            self.value(value, indent, false);
        }
    }

    fn seq_items(&mut self, items: &[Tree], indent: usize, first_inline: bool) {
        for (i, item) in items.iter().enumerate() {
            if !(i == 0 && first_inline) {
                self.maybe_comment_lines(indent);
                self.out.push_str(&" ".repeat(indent));
            }
            self.out.push('-');
            self.value(item, indent + 2, true);
        }
    }

    /// Only plain, quoted and nested flow values fit in flow style.
    fn flow_ok(&self, tree: &Tree) -> bool {
        match tree {
            Tree::Scalar(ScalarText::Plain(w)) => !w.contains(['[', ']', '{', '}', ',']),
            Tree::Scalar(ScalarText::Single(_) | ScalarText::Double(_)) => true,
            Tree::Scalar(_) => false,
            Tree::Map(entries) => entries.iter().all(|(_, v)| self.flow_ok(v)),
            Tree::Seq(items) => items.iter().all(|v| self.flow_ok(v)),
        }
    }

    /// A flow collection, sometimes broken over lines at `indent`.
    fn flow(&mut self, tree: &Tree, indent: usize) {
        let separator = |w: &mut Writer| {
            if w.choices.chance(1) {
                w.maybe_trailing_comment();
                format!(",\n{}", " ".repeat(indent))
            } else {
                [",", ", ", " ,  "][usize::from(w.choices.next(3))].to_string()
            }
        };
        match tree {
            Tree::Scalar(scalar) => {
                self.scalar_inline(scalar, indent);
            }
            Tree::Map(entries) => {
                self.out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        let sep = separator(self);
                        self.out.push_str(&sep);
                    }
                    self.out.push_str(&format!("{key:?}: "));
                    let properties = self.properties();
                    self.out.push_str(&properties);
                    self.flow(value, indent);
                }
                self.out.push('}');
            }
            Tree::Seq(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        let sep = separator(self);
                        self.out.push_str(&sep);
                    }
                    if let Some(alias) = self.alias() {
                        self.out.push_str(&alias);
                        continue;
                    }
                    let properties = self.properties();
                    self.out.push_str(&properties);
                    self.flow(item, indent);
                }
                self.out.push(']');
            }
        }
    }
}

fn write(tree: &Tree, choices: Vec<u8>) -> String {
    let mut writer = Writer {
        out: String::new(),
        choices: Choices {
            bytes: choices,
            at: 0,
        },
        comments: 0,
        anchors: 0,
    };
    if writer.choices.chance(1) {
        writer.out.push_str("# head\n\n");
    }
    match tree {
        Tree::Map(entries) => writer.map_entries(entries, 0, false),
        Tree::Seq(items) => writer.seq_items(items, 0, false),
        Tree::Scalar(_) => writer.map_entries(&[("root".to_string(), tree.clone())], 0, false),
    }
    if writer.choices.chance(1) {
        writer.out.push_str("# tail\n");
    }
    writer.out
}

/// The comments of a text, in order: each `#` outside every node that
/// follows white space, to the end of its line.
fn comments(text: &str) -> Vec<String> {
    let parsed = yaml::parse(text);
    let mut covered = Vec::new();
    let mut pending: Vec<&Node> = parsed.documents.iter().collect();
    while let Some(node) = pending.pop() {
        covered.push(node.span);
        match &node.kind {
            NodeKind::Scalar(_) => {}
            NodeKind::Seq(items) => pending.extend(items),
            NodeKind::Map(entries) => {
                pending.extend(entries.iter().flat_map(|e| [&e.key, &e.value]))
            }
        }
    }
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let after_space = i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b'\n' | b'\r');
        if bytes[i] == b'#' && after_space && !covered.iter().any(|s| s.start <= i && i < s.end) {
            let end = text[i..].find(['\n', '\r']).map_or(text.len(), |e| i + e);
            found.push(text[i..end].trim_end().to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    found
}

fn same_tree(a: &Node, b: &Node) -> bool {
    match (&a.kind, &b.kind) {
        (NodeKind::Scalar(x), NodeKind::Scalar(y)) => x.value == y.value && x.style == y.style,
        (NodeKind::Seq(x), NodeKind::Seq(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_tree(a, b))
        }
        (NodeKind::Map(x), NodeKind::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(a, b)| same_tree(&a.key, &b.key) && same_tree(&a.value, &b.value))
        }
        _ => false,
    }
}

fn check_formatting(text: &str) -> Result<(), TestCaseError> {
    let parsed = yaml::parse(text);
    let result = format_workflow(text);
    if !parsed.diagnostics.is_empty() {
        prop_assert!(result.is_err(), "invalid YAML was formatted: {text:?}");
        return Ok(());
    }
    let formatted = match result {
        Ok(formatted) => formatted,
        Err(error) => return Err(TestCaseError::fail(format!("{error}\n{text}"))),
    };
    let edits = donmai_compiler::fmt::format_edits(text).expect("formats");
    prop_assert_eq!(&donmai_compiler::fix::apply_edits(text, &edits), &formatted);
    let again = format_workflow(&formatted)
        .map_err(|e| TestCaseError::fail(format!("{e}\n{formatted}")))?;
    prop_assert_eq!(&again, &formatted, "not idempotent; input:\n{}", text);
    let reparsed = yaml::parse(&formatted);
    prop_assert!(reparsed.diagnostics.is_empty());
    prop_assert_eq!(reparsed.documents.len(), parsed.documents.len());
    for (a, b) in parsed.documents.iter().zip(&reparsed.documents) {
        prop_assert!(
            same_tree(a, b),
            "data changed:\n{}\n=>\n{}",
            text,
            formatted
        );
    }
    prop_assert_eq!(
        comments(text),
        comments(&formatted),
        "comments changed:\n{}\n=>\n{}",
        text,
        formatted
    );
    prop_assert!(formatted.is_empty() || formatted.ends_with('\n'));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(2000)))]

    #[test]
    fn generated_layouts_format_faithfully(tree in tree(), choices in prop::collection::vec(any::<u8>(), 64..256)) {
        let text = write(&tree, choices);
        let parsed = yaml::parse(&text);
        // The writer aims at valid YAML; what it gets wrong is still a
        // test of the refusal path.
        check_formatting(&text)?;
        if parsed.diagnostics.is_empty() {
            prop_assert!(format_workflow(&text).is_ok());
        }
    }
}

fn workflow_files() -> &'static [String] {
    static FILES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    FILES.get_or_init(read_workflow_files)
}

fn read_workflow_files() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let mut texts = Vec::new();
    for dir in [
        "tests/corpus/ok",
        "tests/corpus/err",
        "examples",
        "examples/groups",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut paths: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        paths.sort();
        for path in paths {
            texts.push(std::fs::read_to_string(path).expect("read"));
        }
    }
    assert!(texts.len() > 20, "the corpus is where it should be");
    texts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(1000)))]

    #[test]
    fn random_edits_of_real_files_never_panic(
        file in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..4, "[-:?|>'\"\n #&*!{}\\[\\],ab\t{}é0-9.%]{0,4}"), 1..4),
    ) {
        let files = workflow_files();
        let mut text = files[file.index(files.len())].clone();
        for (at, delete, insert) in edits {
            let mut at = at.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + delete).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            text.replace_range(at..end, &insert);
        }
        check_formatting(&text)?;
        check_migration(&text.replace("workflow/v2", "workflow/v1"))?;
    }
}

/// Migration never panics; what it returns reads as workflow/v2 and was
/// made by its own edits.
fn check_migration(text: &str) -> Result<(), TestCaseError> {
    let Ok(outcome) = donmai_compiler::migrate::migrate_v1_to_v2(text) else {
        return Ok(());
    };
    prop_assert_eq!(
        &donmai_compiler::fix::apply_edits(text, &outcome.edits),
        &outcome.text
    );
    for pair in outcome.edits.windows(2) {
        prop_assert!(pair[0].span.end <= pair[1].span.start, "overlapping edits");
    }
    let workflow = donmai_grammar::lower::parse_workflow(&outcome.text).workflow;
    prop_assert!(
        workflow.is_some_and(|w| w.api_version.value == donmai_grammar::ast::ApiVersion::V2)
    );
    Ok(())
}
