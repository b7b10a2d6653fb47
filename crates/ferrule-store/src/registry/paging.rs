//! Keyset pagination: page markers and the `WHERE`/`ORDER BY`/`LIMIT` tail of list queries.
//!
//! A marker is the sort key of the last item of the previous page, tagged with the list it
//! belongs to and hex-encoded (opaque to clients, and within the `[A-Za-z0-9+/]+={0,2}`
//! pattern AWS's models give markers). Keyset paging never skips or repeats an item when
//! others are inserted or deleted between pages.

use crate::registry::db::Sql;
use crate::registry::error::RegistryError;
use crate::registry::records::{Page, PageRequest};

/// Separates the parts of a marker; no key can contain NUL (PostgreSQL text cannot).
const SEPARATOR: char = '\0';

/// How a list is sorted.
#[derive(Debug, Clone, Copy)]
pub(super) enum SortKey {
    /// By one text column.
    Text(&'static str),
    /// By a BIGINT creation time, ties broken by a text id.
    TimeThenText(&'static str, &'static str),
}

/// Appends `AND <after the marker> ORDER BY ... LIMIT page_size + 1` to `sql`, whose `WHERE`
/// clause is already open. `list` names the list in markers, so one list's marker is refused
/// by another.
pub(super) fn tail(
    sql: &mut Sql,
    list: &'static str,
    key: SortKey,
    page: &PageRequest,
) -> Result<(), RegistryError> {
    if page.page_size == 0 {
        return Err(RegistryError::InvalidRequest(
            "the page size must be at least 1".to_owned(),
        ));
    }
    let after = page
        .marker
        .as_deref()
        .map(|m| decode(list, m))
        .transpose()?;
    let (gt, order) = if page.ascending {
        (" > ", " ASC")
    } else {
        (" < ", " DESC")
    };
    match key {
        SortKey::Text(column) => {
            if let Some(parts) = after {
                let [value] = parts_array(parts)?;
                sql.push(" AND ").push(column).push(gt).bind(value);
            }
            sql.push(" ORDER BY ").push(column).push(order);
        }
        SortKey::TimeThenText(time, text) => {
            if let Some(parts) = after {
                let [t, value] = parts_array(parts)?;
                let t: i64 = t.parse().map_err(|_| malformed())?;
                sql.push(" AND (")
                    .push(time)
                    .push(", ")
                    .push(text)
                    .push(")");
                sql.push(gt)
                    .push("(")
                    .bind(t)
                    .push(", ")
                    .bind(value)
                    .push(")");
            }
            sql.push(" ORDER BY ").push(time).push(order);
            sql.push(", ").push(text).push(order);
        }
    }
    // One more than asked for tells whether there is a next page.
    let limit = i64::try_from(page.page_size.saturating_add(1)).unwrap_or(i64::MAX);
    sql.push(" LIMIT ").bind(limit);
    Ok(())
}

/// Cuts the extra row `tail` asked for and makes the next marker from the last item kept.
pub(super) fn finish<T>(
    list: &'static str,
    mut items: Vec<T>,
    page: &PageRequest,
    key_of: impl Fn(&T) -> Vec<String>,
) -> Page<T> {
    if items.len() <= page.page_size {
        return Page {
            items,
            next_marker: None,
        };
    }
    items.truncate(page.page_size);
    let next_marker = items.last().map(|last| encode(list, &key_of(last)));
    Page { items, next_marker }
}

fn encode(list: &str, parts: &[String]) -> String {
    let mut plain = String::from(list);
    for part in parts {
        plain.push(SEPARATOR);
        plain.push_str(part);
    }
    plain.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode(list: &str, marker: &str) -> Result<Vec<String>, RegistryError> {
    let hex = marker.as_bytes();
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return Err(malformed());
    }
    let bytes = hex
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or_else(malformed)
        })
        .collect::<Result<Vec<u8>, _>>()?;
    let plain = String::from_utf8(bytes).map_err(|_| malformed())?;
    let mut parts = plain.split(SEPARATOR);
    if parts.next() != Some(list) {
        return Err(malformed());
    }
    Ok(parts.map(str::to_owned).collect())
}

fn parts_array<const N: usize>(parts: Vec<String>) -> Result<[String; N], RegistryError> {
    parts.try_into().map_err(|_| malformed())
}

fn malformed() -> RegistryError {
    RegistryError::InvalidRequest("the marker (next token) is not valid for this list".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_are_tagged() {
        let parts = vec!["17".to_owned(), "arn:aws:iot:r:1:cert/ab+c=".to_owned()];
        let m = encode("certs", &parts);
        assert!(m.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(decode("certs", &m).ok(), Some(parts));
        assert!(decode("cas", &m).is_err());
        for bad in ["", "0", "zz", "c3", "ff00"] {
            assert!(decode("certs", bad).is_err(), "{bad:?}");
        }
    }
}
