//! The subscription index: topic filters keyed level by level, matched against published topics.

use std::collections::HashMap;

/// A subscription index from topic filters to values (the broker stores one value per
/// subscriber and filter). Several values may share a filter.
///
/// Filters are taken as plain strings and expected to be valid match filters (see
/// [`crate::TopicFilter::match_filter`]); the trie knows nothing of `$share`. As in
/// [`crate::matches`], a `#` level ends the filter: anything after it is ignored.
#[derive(Debug, Clone)]
pub struct TopicTrie<V> {
    root: Node<V>,
    len: usize,
}

#[derive(Debug, Clone)]
struct Node<V> {
    /// Values whose filter ends at this node.
    values: Vec<V>,
    /// Values whose filter is this node's path followed by `#`.
    multi: Vec<V>,
    /// The `+` child.
    single: Option<Box<Node<V>>>,
    /// Literal children by level text.
    children: HashMap<Box<str>, Node<V>>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            values: Vec::new(),
            multi: Vec::new(),
            single: None,
            children: HashMap::new(),
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.values.is_empty()
            && self.multi.is_empty()
            && self.single.is_none()
            && self.children.is_empty()
    }
}

/// Splits off the first level: `"a/b"` gives `("a", Some("b"))`, `"a"` gives `("a", None)`.
fn next_level(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('/') {
        Some((level, rest)) => (level, Some(rest)),
        None => (rest, None),
    }
}

impl<V> Default for TopicTrie<V> {
    fn default() -> Self {
        TopicTrie::new()
    }
}

impl<V> TopicTrie<V> {
    /// An empty index.
    pub fn new() -> Self {
        TopicTrie {
            root: Node::default(),
            len: 0,
        }
    }

    /// Number of values stored, over all filters.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no values are stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `value` under `filter`, next to any values already there.
    pub fn insert(&mut self, filter: &str, value: V) {
        let mut node = &mut self.root;
        let mut rest = Some(filter);
        while let Some(remaining) = rest {
            let (level, next) = next_level(remaining);
            match level {
                "#" => {
                    node.multi.push(value);
                    self.len += 1;
                    return;
                }
                "+" => node = node.single.get_or_insert_with(Box::default),
                _ => {
                    // Look up first so that the common re-subscribe path does not allocate.
                    if !node.children.contains_key(level) {
                        node.children.insert(level.into(), Node::default());
                    }
                    node = node
                        .children
                        .get_mut(level)
                        .expect("the child was just looked up or inserted");
                }
            }
            rest = next;
        }
        node.values.push(value);
        self.len += 1;
    }

    /// Removes the values under exactly `filter` for which `pred` returns true, prunes nodes
    /// left empty, and returns how many were removed.
    pub fn remove(&mut self, filter: &str, mut pred: impl FnMut(&V) -> bool) -> usize {
        let removed = remove_in(&mut self.root, Some(filter), &mut pred);
        self.len -= removed;
        removed
    }

    /// The values stored under exactly `filter` (no wildcard matching).
    pub fn get(&self, filter: &str) -> &[V] {
        let mut node = &self.root;
        let mut rest = Some(filter);
        while let Some(remaining) = rest {
            let (level, next) = next_level(remaining);
            let child = match level {
                "#" => return &node.multi,
                "+" => node.single.as_deref(),
                _ => node.children.get(level),
            };
            match child {
                Some(child) => node = child,
                None => return &[],
            }
            rest = next;
        }
        &node.values
    }

    /// Calls `f` with every value whose filter matches `topic`, once per stored value. Filters
    /// whose first level is `+` or `#` do not match topics starting with `$`.
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(&V)) {
        let root = &self.root;
        let (level, next) = next_level(topic);
        if !topic.starts_with('$') {
            root.multi.iter().for_each(&mut f);
            if let Some(single) = &root.single {
                visit(single, next, &mut f);
            }
        }
        if let Some(child) = root.children.get(level) {
            visit(child, next, &mut f);
        }
    }

    /// Whether any filter matches `topic`.
    pub fn has_match(&self, topic: &str) -> bool {
        let mut any = false;
        self.for_each_match(topic, |_| any = true);
        any
    }
}

/// Visits `node`, reached by matching a topic level, with the topic levels still to match.
fn visit<V>(node: &Node<V>, rest: Option<&str>, f: &mut impl FnMut(&V)) {
    // `#` matches its parent level too, so it applies whether or not levels remain.
    node.multi.iter().for_each(&mut *f);
    match rest {
        None => node.values.iter().for_each(f),
        Some(rest) => {
            let (level, next) = next_level(rest);
            if let Some(single) = &node.single {
                visit(single, next, f);
            }
            if let Some(child) = node.children.get(level) {
                visit(child, next, f);
            }
        }
    }
}

fn remove_in<V>(
    node: &mut Node<V>,
    rest: Option<&str>,
    pred: &mut impl FnMut(&V) -> bool,
) -> usize {
    let Some(rest) = rest else {
        return retain_count(&mut node.values, pred);
    };
    let (level, next) = next_level(rest);
    match level {
        "#" => retain_count(&mut node.multi, pred),
        "+" => {
            let Some(single) = node.single.as_deref_mut() else {
                return 0;
            };
            let removed = remove_in(single, next, pred);
            if single.is_empty() {
                node.single = None;
            }
            removed
        }
        _ => {
            let Some(child) = node.children.get_mut(level) else {
                return 0;
            };
            let removed = remove_in(child, next, pred);
            if child.is_empty() {
                node.children.remove(level);
            }
            removed
        }
    }
}

fn retain_count<V>(values: &mut Vec<V>, pred: &mut impl FnMut(&V) -> bool) -> usize {
    let before = values.len();
    values.retain(|v| !pred(v));
    if values.is_empty() {
        // Give memory back: a node that lost its subscribers may live on for its children.
        values.shrink_to_fit();
    }
    before - values.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched(trie: &TopicTrie<u32>, topic: &str) -> Vec<u32> {
        let mut out = Vec::new();
        trie.for_each_match(topic, |v| out.push(*v));
        out.sort_unstable();
        out
    }

    #[test]
    fn insert_match_remove() {
        let mut trie = TopicTrie::new();
        trie.insert("a/b", 1);
        trie.insert("a/+", 2);
        trie.insert("a/#", 3);
        trie.insert("#", 4);
        trie.insert("+/b", 5);
        trie.insert("$SYS/#", 6);
        trie.insert("a/b", 7);
        assert_eq!(trie.len(), 7);
        assert_eq!(matched(&trie, "a/b"), vec![1, 2, 3, 4, 5, 7]);
        assert_eq!(matched(&trie, "a"), vec![3, 4]);
        assert_eq!(matched(&trie, "$SYS/b"), vec![6]);
        assert_eq!(trie.get("a/b"), &[1, 7]);
        assert_eq!(trie.remove("a/b", |v| *v == 1), 1);
        assert_eq!(trie.remove("a/b", |v| *v == 1), 0);
        assert_eq!(trie.remove("nope/x", |_| true), 0);
        assert_eq!(trie.len(), 6);
        for filter in ["a/b", "a/+", "a/#", "#", "+/b", "$SYS/#"] {
            trie.remove(filter, |_| true);
        }
        assert!(trie.is_empty());
        assert!(trie.root.is_empty());
    }
}
