//! Topic validation and matching tables, and the subscription trie against the naive matcher.

use std::collections::BTreeSet;

use ferrule_mqtt::{TopicError, TopicFilter, TopicName, TopicTrie, matches};
use proptest::prelude::*;

#[test]
fn topic_name_validation() {
    let long = "a".repeat(65_536);
    let max = "a".repeat(65_535);
    let cases: &[(&str, Result<(), TopicError>)] = &[
        ("a", Ok(())),
        ("a/b/c", Ok(())),
        ("/", Ok(())),
        ("a//b", Ok(())),
        ("/leading", Ok(())),
        ("trailing/", Ok(())),
        ("$SYS/broker/load", Ok(())),
        ("$aws/things/t1/shadow/update", Ok(())),
        ("sport/tennis player1", Ok(())),
        ("日本/温度", Ok(())),
        (&max, Ok(())),
        ("", Err(TopicError::Empty)),
        (&long, Err(TopicError::TooLong { len: 65_536 })),
        ("a\0b", Err(TopicError::Nul)),
        ("a/+", Err(TopicError::WildcardInName('+'))),
        ("a/#", Err(TopicError::WildcardInName('#'))),
        ("a+b", Err(TopicError::WildcardInName('+'))),
        ("#", Err(TopicError::WildcardInName('#'))),
    ];
    for (topic, expected) in cases {
        let got = TopicName::new(topic).map(|_| ());
        assert_eq!(&got, expected, "{topic:.40}");
    }
    let t = TopicName::new("$SYS/a//b").expect("valid");
    assert!(t.is_system());
    assert_eq!(t.levels().collect::<Vec<_>>(), ["$SYS", "a", "", "b"]);
    assert_eq!(t.to_string(), "$SYS/a//b");
    assert!(!TopicName::new("a").expect("valid").is_system());
}

#[test]
fn topic_filter_validation() {
    let wildcard = |level, text: &str, problem| {
        Err(TopicError::InvalidWildcard {
            level,
            text: text.into(),
            problem,
        })
    };
    let share = |problem| Err(TopicError::InvalidShare { problem });
    let cases: Vec<(&str, Result<(), TopicError>)> = vec![
        ("a", Ok(())),
        ("#", Ok(())),
        ("+", Ok(())),
        ("a/#", Ok(())),
        ("+/+", Ok(())),
        ("/+", Ok(())),
        ("a//+/#", Ok(())),
        ("sport/+/player1", Ok(())),
        ("$SYS/#", Ok(())),
        ("$share", Ok(())),
        ("$share/g/a/#", Ok(())),
        ("$share/g/#", Ok(())),
        ("$share/g/+/x", Ok(())),
        ("$share/g/$SYS/x", Ok(())),
        ("$share/g//", Ok(())),
        ("", Err(TopicError::Empty)),
        ("a\0", Err(TopicError::Nul)),
        ("a/#/b", wildcard(1, "#", "'#' must be the last level")),
        ("#/", wildcard(0, "#", "'#' must be the last level")),
        ("a#", wildcard(0, "a#", "'#' must occupy a whole level")),
        ("a/b#", wildcard(1, "b#", "'#' must occupy a whole level")),
        ("a+", wildcard(0, "a+", "'+' must occupy a whole level")),
        ("a/+b/c", wildcard(1, "+b", "'+' must occupy a whole level")),
        ("++", wildcard(0, "++", "'+' must occupy a whole level")),
        ("$share/", share("the share name is empty")),
        ("$share//a", share("the share name is empty")),
        ("$share/g", share("no topic filter follows the share name")),
        (
            "$share/g/",
            share("the topic filter after the share name is empty"),
        ),
        ("$share/g+/a", share("the share name contains a wildcard")),
        ("$share/#/a", share("the share name contains a wildcard")),
        (
            "$share/g/a/#/b",
            wildcard(1, "#", "'#' must be the last level"),
        ),
    ];
    for (filter, expected) in cases {
        let got = TopicFilter::new(filter).map(|_| ());
        assert_eq!(got, expected, "{filter}");
    }
    let long = "a".repeat(65_536);
    assert_eq!(
        TopicFilter::new(&long),
        Err(TopicError::TooLong { len: 65_536 })
    );
}

#[test]
fn filter_accessors() {
    let shared = TopicFilter::new("$share/grp/sensors/+/temp").expect("valid");
    assert_eq!(shared.share_group(), Some("grp"));
    assert_eq!(shared.match_filter(), "sensors/+/temp");
    assert!(shared.is_shared());
    assert!(shared.has_wildcards());
    assert!(shared.matches(&TopicName::new("sensors/1/temp").expect("valid")));
    assert!(!shared.matches(&TopicName::new("$share/grp/sensors/1/temp").expect("valid")));
    let plain = TopicFilter::new("$share").expect("valid");
    assert_eq!(plain.share_group(), None);
    assert_eq!(plain.match_filter(), "$share");
    assert!(!plain.has_wildcards());
}

#[test]
fn matching_table() {
    let cases = [
        ("a", "a", true),
        ("a", "b", false),
        ("a/b", "a/b", true),
        ("a/b", "a", false),
        ("a", "a/b", false),
        ("#", "a", true),
        ("#", "a/b/c", true),
        ("#", "/", true),
        ("#", "$SYS/x", false),
        ("#", "$SYS", false),
        ("+", "$SYS", false),
        ("+/x", "$SYS/x", false),
        ("+/#", "$SYS/x", false),
        ("$SYS/#", "$SYS/x", true),
        ("$SYS/#", "$SYS", true),
        ("$SYS/+", "$SYS/x", true),
        ("a/#", "a", true),
        ("a/#", "a/b", true),
        ("a/#", "a/b/c", true),
        ("a/#", "ab", false),
        ("a/#", "b/a", false),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("sport/+", "sport/tennis", true),
        ("sport/+", "sport/tennis/player", false),
        ("sport/+/player1", "sport/tennis/player1", true),
        ("+", "a", true),
        ("+", "a/b", false),
        ("+", "/a", false),
        ("+/+", "/a", true),
        ("/+", "/a", true),
        ("+", "", true),
        ("a//b", "a//b", true),
        ("a/+/b", "a//b", true),
        ("a/+/b", "a/b", false),
        ("a/b/", "a/b", false),
        ("a/b/#", "a/b/", true),
        ("x/$y", "x/$y", true),
        ("x/+", "x/$y", true),
        ("A", "a", false),
    ];
    for (filter, topic, expected) in cases {
        assert_eq!(matches(filter, topic), expected, "{filter} vs {topic}");
    }
}

fn level() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["a", "b", "", "$x", "$SYS", "c/d"])
}

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(level(), 1..5)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("valid topic", |t| TopicName::new(t).is_ok())
}

fn filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![3 => level(), 1 => Just("+")];
    let levels = (prop::collection::vec(level, 1..5), any::<bool>()).prop_map(|(levels, hash)| {
        let mut f = levels.join("/");
        if hash {
            f.push_str("/#");
        }
        f
    });
    prop_oneof![9 => levels, 1 => Just("#".to_owned())]
        .prop_filter("valid filter", |f| TopicFilter::new(f).is_ok())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn trie_agrees_with_matches(
        filters in prop::collection::vec(filter(), 0..24),
        removals in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        topics in prop::collection::vec(topic(), 1..16),
    ) {
        let mut trie = TopicTrie::new();
        let mut live: Vec<(String, usize)> = Vec::new();
        for (i, f) in filters.iter().enumerate() {
            trie.insert(f, i);
            live.push((f.clone(), i));
        }
        if !live.is_empty() {
            for index in removals {
                let (f, i) = live[index.index(live.len())].clone();
                let removed = trie.remove(&f, |v| *v == i);
                let before = live.len();
                live.retain(|(_, v)| *v != i);
                prop_assert_eq!(removed, before - live.len());
                if live.is_empty() {
                    break;
                }
            }
        }
        prop_assert_eq!(trie.len(), live.len());
        for t in &topics {
            let mut got = Vec::new();
            trie.for_each_match(t, |v| got.push(*v));
            let got_set: BTreeSet<usize> = got.iter().copied().collect();
            prop_assert_eq!(got.len(), got_set.len(), "each value visited once");
            let expected: BTreeSet<usize> = live
                .iter()
                .filter(|(f, _)| matches(f, t))
                .map(|(_, i)| *i)
                .collect();
            prop_assert_eq!(got_set, expected, "topic {}", t);
        }
        for (f, _) in live.clone() {
            trie.remove(&f, |_| true);
        }
        prop_assert!(trie.is_empty());
    }

    #[test]
    fn filter_matches_agrees_with_free_function(f in filter(), t in topic()) {
        let filter = TopicFilter::new(&f).expect("generated valid");
        let topic = TopicName::new(&t).expect("generated valid");
        prop_assert_eq!(filter.matches(&topic), matches(&f, &t));
        let shared = TopicFilter::new(format!("$share/g/{f}")).expect("valid share");
        prop_assert_eq!(shared.matches(&topic), matches(&f, &t));
    }
}

#[test]
fn trie_get_and_multiple_values() {
    let mut trie = TopicTrie::new();
    trie.insert("a/+", ("c1", 0));
    trie.insert("a/+", ("c2", 1));
    trie.insert("$share/g/a/+", ("c3", 1)); // the trie treats this as a literal filter
    assert_eq!(trie.get("a/+"), &[("c1", 0), ("c2", 1)]);
    assert!(trie.get("a").is_empty());
    let mut seen = Vec::new();
    trie.for_each_match("a/x", |v| seen.push(v.0));
    assert_eq!(seen, ["c1", "c2"]);
    assert!(trie.has_match("a/x"));
    assert!(!trie.has_match("b"));
    assert_eq!(trie.remove("a/+", |v| v.0 == "c1"), 1);
    assert_eq!(trie.len(), 2);
}
