//! A small XML writer for query-protocol responses: elements and escaped text, nothing more.

use crate::error::xml_escape;

/// XML being written, element by element.
#[derive(Debug, Default)]
pub(super) struct Xml(String);

impl Xml {
    /// `<tag>`.
    pub(super) fn open(&mut self, tag: &str) -> &mut Xml {
        self.0.push('<');
        self.0.push_str(tag);
        self.0.push('>');
        self
    }

    /// `</tag>`.
    pub(super) fn close(&mut self, tag: &str) -> &mut Xml {
        self.0.push_str("</");
        self.0.push_str(tag);
        self.0.push('>');
        self
    }

    /// `<tag>value</tag>`, the value escaped.
    pub(super) fn text(&mut self, tag: &str, value: &str) -> &mut Xml {
        self.open(tag);
        self.0.push_str(&xml_escape(value));
        self.close(tag)
    }

    /// Markup written as is.
    pub(super) fn raw(&mut self, markup: &str) -> &mut Xml {
        self.0.push_str(markup);
        self
    }

    /// Appends what another writer wrote.
    pub(super) fn append(&mut self, other: Xml) -> &mut Xml {
        self.0.push_str(&other.0);
        self
    }

    pub(super) fn into_string(self) -> String {
        self.0
    }
}
