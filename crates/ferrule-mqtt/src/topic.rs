//! Topic names and filters as validated newtypes, and the MQTT wildcard matching rules.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The longest topic name or filter: it is a length-prefixed UTF-8 string on the wire.
pub const MAX_TOPIC_LEN: usize = 65_535;

const SHARE_PREFIX: &str = "$share/";

/// Why a string is not a valid topic name or filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic is the empty string.
    #[error("topic is empty")]
    Empty,
    /// The topic is longer than 65,535 bytes.
    #[error("topic is {len} bytes long, the limit is 65535")]
    TooLong {
        /// Length in bytes.
        len: usize,
    },
    /// The topic contains U+0000.
    #[error("topic contains the NUL character")]
    Nul,
    /// A topic name (as published to) contains `+` or `#`.
    #[error("topic name contains the wildcard character '{0}'")]
    WildcardInName(char),
    /// A filter uses `+` or `#` other than as a whole level (and `#` only as the last).
    #[error("topic filter level {level} ('{text}') misuses a wildcard: {problem}")]
    InvalidWildcard {
        /// Zero-based index of the offending level.
        level: usize,
        /// The offending level.
        text: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A `$share/{group}/{filter}` shared subscription is malformed.
    #[error("shared subscription is invalid: {problem}")]
    InvalidShare {
        /// What is wrong with it.
        problem: &'static str,
    },
}

fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong { len: s.len() });
    }
    if s.as_bytes().contains(&0) {
        return Err(TopicError::Nul);
    }
    Ok(())
}

/// A topic name as published to: 1..=65535 bytes of UTF-8 without `+`, `#` or U+0000.
/// Cloning is a reference-count increment.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(Arc<str>);

impl TopicName {
    /// Validates `name` as a topic name.
    pub fn new(name: impl AsRef<str>) -> Result<TopicName, TopicError> {
        let name = name.as_ref();
        Self::validate(name)?;
        Ok(TopicName(Arc::from(name)))
    }

    /// Checks `name` without allocating.
    pub fn validate(name: &str) -> Result<(), TopicError> {
        check_common(name)?;
        if let Some(c) = name.chars().find(|c| *c == '+' || *c == '#') {
            return Err(TopicError::WildcardInName(c));
        }
        Ok(())
    }

    /// The topic as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `/`-separated levels; empty levels are kept (`"a//b"` has three).
    pub fn levels(&self) -> std::str::Split<'_, char> {
        self.0.split('/')
    }

    /// Whether the topic starts with `$` (e.g. `$SYS/...`, `$aws/...`), which wildcards at the
    /// first level do not match.
    pub fn is_system(&self) -> bool {
        self.0.starts_with('$')
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicName({:?})", &*self.0)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TopicName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for TopicName {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopicName::new(s)
    }
}

impl TryFrom<&str> for TopicName {
    type Error = TopicError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        TopicName::new(s)
    }
}

impl TryFrom<String> for TopicName {
    type Error = TopicError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TopicName::new(s)
    }
}

/// A topic filter as subscribed to: non-empty, no U+0000, `+` only as a whole level, `#` only as
/// the whole last level. `$share/{group}/{filter}` is a shared subscription whose group has no
/// `+`, `#` or `/` and whose inner filter is itself valid. Cloning is a reference-count increment.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(Arc<str>);

impl TopicFilter {
    /// Validates `filter` as a topic filter.
    pub fn new(filter: impl AsRef<str>) -> Result<TopicFilter, TopicError> {
        let filter = filter.as_ref();
        Self::validate(filter)?;
        Ok(TopicFilter(Arc::from(filter)))
    }

    /// Checks `filter` without allocating.
    pub fn validate(filter: &str) -> Result<(), TopicError> {
        check_common(filter)?;
        match split_share(filter) {
            Some((group, inner)) => {
                if group.is_empty() {
                    return Err(TopicError::InvalidShare {
                        problem: "the share name is empty",
                    });
                }
                if group.contains(['+', '#']) {
                    return Err(TopicError::InvalidShare {
                        problem: "the share name contains a wildcard",
                    });
                }
                match inner {
                    None => Err(TopicError::InvalidShare {
                        problem: "no topic filter follows the share name",
                    }),
                    Some("") => Err(TopicError::InvalidShare {
                        problem: "the topic filter after the share name is empty",
                    }),
                    Some(inner) => check_wildcards(inner),
                }
            }
            None => check_wildcards(filter),
        }
    }

    /// The filter as a string, including any `$share/{group}/` prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The share group of a `$share/{group}/{filter}` subscription.
    pub fn share_group(&self) -> Option<&str> {
        split_share(&self.0).map(|(group, _)| group)
    }

    /// Whether this is a shared subscription.
    pub fn is_shared(&self) -> bool {
        self.share_group().is_some()
    }

    /// The filter that topics are matched against: the part after `$share/{group}/` for shared
    /// subscriptions, else the whole filter.
    pub fn match_filter(&self) -> &str {
        match split_share(&self.0) {
            Some((_, Some(inner))) => inner,
            _ => &self.0,
        }
    }

    /// Whether the (match) filter contains `+` or `#`.
    pub fn has_wildcards(&self) -> bool {
        self.match_filter().contains(['+', '#'])
    }

    /// Whether a message published to `topic` matches this filter.
    pub fn matches(&self, topic: &TopicName) -> bool {
        matches(self.match_filter(), topic.as_str())
    }
}

/// `Some((group, inner))` for `$share/group/inner`, `Some((group, None))` for `$share/group`.
fn split_share(filter: &str) -> Option<(&str, Option<&str>)> {
    let rest = filter.strip_prefix(SHARE_PREFIX)?;
    Some(match rest.split_once('/') {
        Some((group, inner)) => (group, Some(inner)),
        None => (rest, None),
    })
}

fn check_wildcards(filter: &str) -> Result<(), TopicError> {
    let mut levels = filter.split('/').enumerate().peekable();
    while let Some((index, level)) = levels.next() {
        let problem = if level.contains('#') {
            if level != "#" {
                Some("'#' must occupy a whole level")
            } else if levels.peek().is_some() {
                Some("'#' must be the last level")
            } else {
                None
            }
        } else if level.contains('+') && level != "+" {
            Some("'+' must occupy a whole level")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(TopicError::InvalidWildcard {
                level: index,
                text: level.to_owned(),
                problem,
            });
        }
    }
    Ok(())
}

impl fmt::Debug for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicFilter({:?})", &*self.0)
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TopicFilter {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for TopicFilter {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopicFilter::new(s)
    }
}

impl TryFrom<&str> for TopicFilter {
    type Error = TopicError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        TopicFilter::new(s)
    }
}

impl TryFrom<String> for TopicFilter {
    type Error = TopicError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TopicFilter::new(s)
    }
}

/// Whether `topic` matches `filter` under the MQTT rules: `+` matches exactly one level (which may
/// be empty), `#` matches its parent level and any number of children (`"a/#"` matches `"a"`),
/// and a filter starting with a wildcard does not match a topic starting with `$`.
///
/// Neither argument is validated; `$share/` prefixes are not stripped (use
/// [`TopicFilter::match_filter`]).
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_parts() {
        let f = TopicFilter::new("$share/g/a/+").expect("valid");
        assert_eq!(f.share_group(), Some("g"));
        assert_eq!(f.match_filter(), "a/+");
        assert!(f.has_wildcards());
        let plain = TopicFilter::new("a/b").expect("valid");
        assert_eq!(plain.share_group(), None);
        assert_eq!(plain.match_filter(), "a/b");
        assert!(!plain.has_wildcards());
    }

    #[test]
    fn matching_basics() {
        assert!(matches("a/#", "a"));
        assert!(matches("#", "a/b"));
        assert!(!matches("#", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
    }
}
