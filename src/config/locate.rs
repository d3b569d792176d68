//! Finds where a key lives in the TOML text, so every config error can name its line.
//!
//! Owns the mapping between dotted key paths (`pools.api.backends[2].addr`) and byte offsets in
//! the source. It knows nothing of what the keys mean.

use std::ops::Range;

use toml_edit::{Document, Item, Table, Value};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn parse_path(path: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(at) => part.split_at(at),
            None => (part, ""),
        };
        if !name.is_empty() {
            steps.push(Step::Key(name));
        }
        while let Some(stripped) = rest.strip_prefix('[') {
            let Some(end) = stripped.find(']') else { break };
            if let Ok(index) = stripped[..end].parse() {
                steps.push(Step::Index(index));
            }
            rest = &stripped[end + 1..];
        }
    }
    steps
}

/// The 1-based line of a byte offset.
pub fn line_of(source: &str, offset: usize) -> usize {
    let end = offset.min(source.len());
    source.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The span of the deepest part of `path` that exists in `document`: the key itself when it is
/// present, else its nearest present parent (a missing key is reported at its table).
pub fn span_of(document: &Document<&str>, path: &str) -> Option<Range<usize>> {
    let steps = parse_path(path);
    let mut best: Option<Range<usize>> = None;
    let mut current = Node::Table(document.as_table());
    for step in steps {
        let (next, span) = match (current, step) {
            (Node::Table(table), Step::Key(key)) => match table.get_key_value(key) {
                Some((k, item)) => (Node::Item(item), k.span()),
                None => break,
            },
            (Node::Item(item), Step::Key(key)) => match item.as_table_like() {
                Some(table) => match table.get_key_value(key) {
                    Some((k, item)) => (Node::Item(item), k.span()),
                    None => break,
                },
                None => break,
            },
            (Node::Item(Item::ArrayOfTables(tables)), Step::Index(i)) => match tables.get(i) {
                Some(table) => (Node::Table(table), table.span()),
                None => break,
            },
            (Node::Item(Item::Value(Value::Array(array))), Step::Index(i)) => match array.get(i) {
                Some(value) => (Node::Value(value), value.span()),
                None => break,
            },
            (Node::Value(Value::Array(array)), Step::Index(i)) => match array.get(i) {
                Some(value) => (Node::Value(value), value.span()),
                None => break,
            },
            (Node::Value(Value::InlineTable(table)), Step::Key(key)) => {
                match table.get_key_value(key) {
                    Some((k, item)) => (Node::Item(item), k.span()),
                    None => break,
                }
            }
            _ => break,
        };
        if span.is_some() {
            best = span;
        }
        current = next;
    }
    best
}

#[derive(Clone, Copy)]
enum Node<'a> {
    Table(&'a Table),
    Item(&'a Item),
    Value(&'a Value),
}

/// The dotted path of the innermost key whose key or value contains `offset`, for errors that
/// come from the deserializer with only a byte span.
pub fn path_at(document: &Document<&str>, offset: usize) -> Option<String> {
    let mut found = None;
    walk_table(document.as_table(), String::new(), offset, &mut found);
    found
}

fn contains(span: Option<Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.start <= offset && offset < s.end.max(s.start + 1))
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk_table(table: &Table, prefix: String, offset: usize, found: &mut Option<String>) {
    for (key, item) in table.iter() {
        let path = join(&prefix, key);
        let key_span = table.key(key).and_then(|k| k.span());
        if contains(key_span, offset) {
            *found = Some(path.clone());
        }
        walk_item(item, path, offset, found);
    }
}

fn walk_item(item: &Item, path: String, offset: usize, found: &mut Option<String>) {
    match item {
        Item::Table(table) => walk_table(table, path, offset, found),
        Item::ArrayOfTables(tables) => {
            for (i, table) in tables.iter().enumerate() {
                walk_table(table, format!("{path}[{i}]"), offset, found);
            }
        }
        Item::Value(value) => walk_value(value, path, offset, found),
        Item::None => {}
    }
}

fn walk_value(value: &Value, path: String, offset: usize, found: &mut Option<String>) {
    if contains(value.span(), offset) {
        *found = Some(path.clone());
    }
    match value {
        Value::Array(array) => {
            for (i, v) in array.iter().enumerate() {
                walk_value(v, format!("{path}[{i}]"), offset, found);
            }
        }
        Value::InlineTable(table) => {
            for (key, v) in table.iter() {
                walk_value(v, join(&path, key), offset, found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "[limits]\nmax_headers = 10\n\n[pools.api]\nbackends = [\n  { addr = \"a:1\" },\n  { addr = \"b\" },\n]\n\n[[routes]]\npool = \"api\"\n\n[[routes]]\npool = \"web\"\n";

    #[test]
    fn a_nested_array_element_key_is_found_on_its_line() {
        let document = Document::parse(SOURCE).unwrap();
        let span = span_of(&document, "pools.api.backends[1].addr").unwrap();
        assert_eq!(line_of(SOURCE, span.start), 7);
    }

    #[test]
    fn an_array_of_tables_entry_is_found_on_its_line() {
        let document = Document::parse(SOURCE).unwrap();
        let span = span_of(&document, "routes[1].pool").unwrap();
        assert_eq!(line_of(SOURCE, span.start), 14);
    }

    #[test]
    fn a_missing_key_is_reported_at_its_parent() {
        let document = Document::parse(SOURCE).unwrap();
        let span = span_of(&document, "limits.nothing_here").unwrap();
        assert_eq!(line_of(SOURCE, span.start), 1);
    }

    #[test]
    fn the_path_at_an_offset_names_the_innermost_key() {
        let document = Document::parse(SOURCE).unwrap();
        let offset = SOURCE.find("\"b\"").unwrap();
        assert_eq!(
            path_at(&document, offset).as_deref(),
            Some("pools.api.backends[1].addr")
        );
    }
}
