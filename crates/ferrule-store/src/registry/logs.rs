//! CloudWatch Logs storage: log groups, log streams and their events.
//!
//! Nothing here is announced on the change feed: nobody caches logs. Events are ordered by
//! timestamp, ties by insertion (`log_events.id`), so paging tokens are stable while events
//! are added. Tokens are plain text (`f/<timestamp>/<id>`, `b/...`, `n/...`): opaque to
//! clients, and refused with [`RegistryError::InvalidRequest`] when malformed.

use crate::registry::db::{Db, Sql, Tx, sql};
use crate::registry::error::RegistryError;
use crate::registry::log_filter::FilterPattern;
use crate::registry::paging::{self, SortKey};
use crate::registry::records::{Page, PageRequest};

type Result<T> = std::result::Result<T, RegistryError>;

const GROUP: &str = "Log group";
const STREAM: &str = "Log stream";

/// Appended to a prefix, it bounds every name that starts with the prefix from above (it is
/// the largest character, and UTF-8 and the "C" collation order by code point).
const AFTER_PREFIX: char = '\u{10FFFF}';

/// Rows scanned per query while filtering events.
const FILTER_CHUNK: i64 = 1000;

/// A log group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogGroupRecord {
    /// Its name (`/aws/lambda/fn`).
    pub name: String,
    /// When it was created, epoch milliseconds.
    pub created_ms: i64,
    /// How long its events are kept; `None`: forever.
    pub retention_in_days: Option<i64>,
}

/// A log stream of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStreamRecord {
    /// Its name, unique within the group.
    pub name: String,
    /// When it was created, epoch milliseconds.
    pub created_ms: i64,
    /// The earliest event timestamp ever put, if any.
    pub first_event_ms: Option<i64>,
    /// The latest event timestamp ever put, if any.
    pub last_event_ms: Option<i64>,
    /// When events were last put, if ever.
    pub last_ingestion_ms: Option<i64>,
}

/// An event to put: its time and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLogEvent {
    /// When the event happened, epoch milliseconds.
    pub timestamp_ms: i64,
    /// The message, as written.
    pub message: String,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEventRecord {
    /// Unique and increasing in insertion order (`eventId`).
    pub id: i64,
    /// The stream it was put to.
    pub stream: String,
    /// When the event happened, epoch milliseconds.
    pub timestamp_ms: i64,
    /// When it was put, epoch milliseconds.
    pub ingestion_ms: i64,
    /// The message.
    pub message: String,
}

/// How [`Registry::describe_log_streams`](crate::Registry::describe_log_streams) sorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStreamOrder {
    /// By name (`LogStreamName`).
    Name,
    /// By the latest event timestamp, streams without events as 0, ties by name
    /// (`LastEventTime`).
    LastEventTime,
}

/// What [`Registry::get_log_events`](crate::Registry::get_log_events) reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogEventsQuery {
    /// Only events at or after this time.
    pub start_ms: Option<i64>,
    /// Only events before this time.
    pub end_ms: Option<i64>,
    /// Without a token: the oldest events (`true`) or the newest (`false`). A token carries
    /// its own direction.
    pub start_from_head: bool,
    /// At most this many events (at least 1).
    pub limit: usize,
    /// A `next_forward_token` or `next_backward_token` of an earlier page.
    pub token: Option<String>,
}

/// A page of one stream's events, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEventsPage {
    /// The events, oldest first, whichever the direction.
    pub events: Vec<LogEventRecord>,
    /// Reads the events after this page. At the end of the stream it is the token that was
    /// passed in, so a caller knows to stop (and may poll with it for new events).
    pub next_forward_token: String,
    /// Reads the events before this page; the same token again at the start of the stream.
    pub next_backward_token: String,
}

/// What [`Registry::filter_log_events`](crate::Registry::filter_log_events) searches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilterQuery {
    /// Only these streams (not together with `stream_prefix`).
    pub stream_names: Option<Vec<String>>,
    /// Only streams whose name starts with this.
    pub stream_prefix: Option<String>,
    /// Only events at or after this time.
    pub start_ms: Option<i64>,
    /// Only events before this time.
    pub end_ms: Option<i64>,
    /// A filter pattern in the term syntax (`ERROR "read timeout" ?WARN -retry`); `None` or
    /// blank matches every event.
    pub pattern: Option<String>,
    /// At most this many events (at least 1).
    pub limit: usize,
    /// The `next_token` of an earlier page.
    pub token: Option<String>,
}

/// A page of matching events across streams, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilteredLogEvents {
    /// The events, ordered by timestamp, ties by insertion.
    pub events: Vec<LogEventRecord>,
    /// Set when the limit was reached: pass it back for the next page.
    pub next_token: Option<String>,
}

type EventRow = (i64, String, i64, i64, String);

fn event(row: EventRow) -> LogEventRecord {
    let (id, stream, timestamp_ms, ingestion_ms, message) = row;
    LogEventRecord {
        id,
        stream,
        timestamp_ms,
        ingestion_ms,
        message,
    }
}

const SELECT_EVENT: &str =
    "SELECT id, stream_name, timestamp_ms, ingestion_ms, message FROM log_events";

type StreamRow = (String, i64, Option<i64>, Option<i64>, Option<i64>);

const SELECT_STREAM: &str = "SELECT name, created_ms, first_event_ms, last_event_ms, \
     last_ingestion_ms FROM log_streams";

fn not_found(kind: &'static str, id: &str) -> RegistryError {
    RegistryError::NotFound {
        kind,
        id: id.to_owned(),
    }
}

fn invalid(message: impl Into<String>) -> RegistryError {
    RegistryError::InvalidRequest(message.into())
}

async fn group_exists(tx: &mut Tx<'_>, group: &str) -> Result<bool> {
    let n = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM log_groups WHERE name = $1",
            group
        ))
        .await?;
    Ok(n > 0)
}

async fn require_group(tx: &mut Tx<'_>, group: &str) -> Result<()> {
    if group_exists(tx, group).await? {
        Ok(())
    } else {
        Err(not_found(GROUP, group))
    }
}

async fn require_stream(tx: &mut Tx<'_>, group: &str, stream: &str) -> Result<()> {
    require_group(tx, group).await?;
    let n = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM log_streams WHERE group_name = $1 AND name = $2",
            group,
            stream
        ))
        .await?;
    if n > 0 {
        Ok(())
    } else {
        Err(not_found(STREAM, stream))
    }
}

fn push_prefix(sql: &mut Sql, column: &'static str, prefix: &str) {
    sql.push(" AND ").push(column).push(" >= ").bind(prefix);
    sql.push(" AND ")
        .push(column)
        .push(" < ")
        .bind(format!("{prefix}{AFTER_PREFIX}"));
}

fn push_window(sql: &mut Sql, start_ms: Option<i64>, end_ms: Option<i64>) {
    if let Some(start) = start_ms {
        sql.push(" AND timestamp_ms >= ").bind(start);
    }
    if let Some(end) = end_ms {
        sql.push(" AND timestamp_ms < ").bind(end);
    }
}

// ----- groups -----

pub(super) async fn create_log_group(db: &Db, name: &str, now_ms: i64) -> Result<()> {
    let mut tx = db.write(format!("creating the log group {name:?}")).await?;
    if group_exists(&mut tx, name).await? {
        return Err(RegistryError::AlreadyExists {
            kind: GROUP,
            id: name.to_owned(),
        });
    }
    tx.execute(sql!(
        "INSERT INTO log_groups (name, created_ms) VALUES ($1, $2)",
        name,
        now_ms
    ))
    .await?;
    tx.commit().await
}

pub(super) async fn delete_log_group(db: &Db, name: &str) -> Result<()> {
    let mut tx = db.write(format!("deleting the log group {name:?}")).await?;
    // Explicit rather than left to the foreign keys' cascade, which is per connection on
    // SQLite.
    tx.execute(sql!("DELETE FROM log_events WHERE group_name = $1", name))
        .await?;
    tx.execute(sql!("DELETE FROM log_streams WHERE group_name = $1", name))
        .await?;
    let deleted = tx
        .execute(sql!("DELETE FROM log_groups WHERE name = $1", name))
        .await?;
    if deleted == 0 {
        return Err(not_found(GROUP, name));
    }
    tx.commit().await
}

pub(super) async fn put_retention_policy(db: &Db, name: &str, days: Option<i64>) -> Result<()> {
    let mut tx = db
        .write(format!("setting the retention of the log group {name:?}"))
        .await?;
    let updated = tx
        .execute(sql!(
            "UPDATE log_groups SET retention_in_days = $2 WHERE name = $1",
            name,
            days
        ))
        .await?;
    if updated == 0 {
        return Err(not_found(GROUP, name));
    }
    tx.commit().await
}

pub(super) async fn describe_log_groups(
    db: &Db,
    prefix: Option<&str>,
    page: &PageRequest,
) -> Result<Page<LogGroupRecord>> {
    const LIST: &str = "log-groups";
    let mut sql = Sql::new("SELECT name, created_ms, retention_in_days FROM log_groups");
    sql.push(" WHERE 1 = 1");
    if let Some(prefix) = prefix {
        push_prefix(&mut sql, "name", prefix);
    }
    paging::tail(&mut sql, LIST, SortKey::Text("name"), page)?;
    let mut tx = db.read("listing log groups").await?;
    let rows: Vec<(String, i64, Option<i64>)> = tx.fetch_all(sql).await?;
    let items = rows
        .into_iter()
        .map(|(name, created_ms, retention_in_days)| LogGroupRecord {
            name,
            created_ms,
            retention_in_days,
        })
        .collect();
    Ok(paging::finish(LIST, items, page, |g| vec![g.name.clone()]))
}

// ----- streams -----

pub(super) async fn create_log_stream(db: &Db, group: &str, name: &str, now_ms: i64) -> Result<()> {
    let mut tx = db
        .write(format!("creating the log stream {name:?} in {group:?}"))
        .await?;
    require_group(&mut tx, group).await?;
    let n = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM log_streams WHERE group_name = $1 AND name = $2",
            group,
            name
        ))
        .await?;
    if n > 0 {
        return Err(RegistryError::AlreadyExists {
            kind: STREAM,
            id: name.to_owned(),
        });
    }
    tx.execute(sql!(
        "INSERT INTO log_streams (group_name, name, created_ms) VALUES ($1, $2, $3)",
        group,
        name,
        now_ms
    ))
    .await?;
    tx.commit().await
}

pub(super) async fn describe_log_streams(
    db: &Db,
    group: &str,
    prefix: Option<&str>,
    order: LogStreamOrder,
    page: &PageRequest,
) -> Result<Page<LogStreamRecord>> {
    const LIST: &str = "log-streams";
    const LAST_EVENT: &str = "COALESCE(last_event_ms, 0)";
    if prefix.is_some() && order == LogStreamOrder::LastEventTime {
        return Err(invalid(
            "Cannot order by LastEventTime with a logStreamNamePrefix.",
        ));
    }
    let mut sql = Sql::new(SELECT_STREAM);
    sql.push(" WHERE group_name = ").bind(group);
    if let Some(prefix) = prefix {
        push_prefix(&mut sql, "name", prefix);
    }
    let key = match order {
        LogStreamOrder::Name => SortKey::Text("name"),
        LogStreamOrder::LastEventTime => SortKey::TimeThenText(LAST_EVENT, "name"),
    };
    paging::tail(&mut sql, LIST, key, page)?;
    let mut tx = db
        .read(format!("listing the log streams of {group:?}"))
        .await?;
    require_group(&mut tx, group).await?;
    let rows: Vec<StreamRow> = tx.fetch_all(sql).await?;
    let items = rows
        .into_iter()
        .map(
            |(name, created_ms, first_event_ms, last_event_ms, last_ingestion_ms)| {
                LogStreamRecord {
                    name,
                    created_ms,
                    first_event_ms,
                    last_event_ms,
                    last_ingestion_ms,
                }
            },
        )
        .collect();
    Ok(paging::finish(LIST, items, page, |s| match order {
        LogStreamOrder::Name => vec![s.name.clone()],
        LogStreamOrder::LastEventTime => {
            vec![s.last_event_ms.unwrap_or(0).to_string(), s.name.clone()]
        }
    }))
}

// ----- events -----

pub(super) async fn put_log_events(
    db: &Db,
    group: &str,
    stream: &str,
    events: &[NewLogEvent],
    now_ms: i64,
) -> Result<()> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Err(invalid("logEvents must hold at least one event"));
    };
    if let Some(i) = events
        .windows(2)
        .position(|w| w[1].timestamp_ms < w[0].timestamp_ms)
    {
        return Err(invalid(format!(
            "Log events in a single PutLogEvents request must be in chronological order: \
             event {} ({} ms) is earlier than event {} ({} ms)",
            i + 1,
            events[i + 1].timestamp_ms,
            i,
            events[i].timestamp_ms
        )));
    }
    let mut tx = db
        .write(format!("putting log events to {group:?} / {stream:?}"))
        .await?;
    require_stream(&mut tx, group, stream).await?;
    for e in events {
        tx.execute(sql!(
            "INSERT INTO log_events (group_name, stream_name, timestamp_ms, ingestion_ms, \
             message) VALUES ($1, $2, $3, $4, $5)",
            group,
            stream,
            e.timestamp_ms,
            now_ms,
            &e.message
        ))
        .await?;
    }
    tx.execute(sql!(
        "UPDATE log_streams SET \
         first_event_ms = CASE WHEN first_event_ms IS NULL OR first_event_ms > $3 \
             THEN $3 ELSE first_event_ms END, \
         last_event_ms = CASE WHEN last_event_ms IS NULL OR last_event_ms < $4 \
             THEN $4 ELSE last_event_ms END, \
         last_ingestion_ms = $5 \
         WHERE group_name = $1 AND name = $2",
        group,
        stream,
        first.timestamp_ms,
        last.timestamp_ms,
        now_ms
    ))
    .await?;
    tx.commit().await
}

/// A position between events: `(timestamp, id)` of the event just before (forward) or just
/// after (backward) it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    /// Events after this key.
    After(i64, i64),
    /// Events before this key.
    Before(i64, i64),
}

impl Cursor {
    fn parse(token: &str) -> Result<Cursor> {
        let bad = || invalid(format!("The specified nextToken {token:?} is not valid."));
        let mut parts = token.splitn(3, '/');
        let (Some(dir), Some(ts), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let ts: i64 = ts.parse().map_err(|_| bad())?;
        let id: i64 = id.parse().map_err(|_| bad())?;
        match dir {
            "f" => Ok(Cursor::After(ts, id)),
            "b" => Ok(Cursor::Before(ts, id)),
            _ => Err(bad()),
        }
    }

    fn token(self) -> String {
        match self {
            Cursor::After(ts, id) => format!("f/{ts}/{id}"),
            Cursor::Before(ts, id) => format!("b/{ts}/{id}"),
        }
    }

    /// The same position seen from the other direction.
    fn flipped(self) -> Cursor {
        match self {
            // After (t, i) = at or after (t, i + 1); before that is up to (t, i).
            Cursor::After(ts, id) => Cursor::Before(ts, id.saturating_add(1)),
            Cursor::Before(ts, id) => Cursor::After(ts, id.saturating_sub(1)),
        }
    }
}

pub(super) async fn get_log_events(
    db: &Db,
    group: &str,
    stream: &str,
    query: &LogEventsQuery,
) -> Result<LogEventsPage> {
    if query.limit == 0 {
        return Err(invalid("limit must be at least 1"));
    }
    let cursor = match query.token.as_deref() {
        Some(token) => Cursor::parse(token)?,
        None if query.start_from_head => Cursor::After(i64::MIN, i64::MIN),
        None => Cursor::Before(i64::MAX, i64::MAX),
    };
    let mut sql = Sql::new(SELECT_EVENT);
    sql.push(" WHERE group_name = ")
        .bind(group)
        .push(" AND stream_name = ")
        .bind(stream);
    push_window(&mut sql, query.start_ms, query.end_ms);
    match cursor {
        Cursor::After(ts, id) => {
            sql.push(" AND (timestamp_ms, id) > (")
                .bind(ts)
                .push(", ")
                .bind(id)
                .push(") ORDER BY timestamp_ms ASC, id ASC");
        }
        Cursor::Before(ts, id) => {
            sql.push(" AND (timestamp_ms, id) < (")
                .bind(ts)
                .push(", ")
                .bind(id)
                .push(") ORDER BY timestamp_ms DESC, id DESC");
        }
    }
    sql.push(" LIMIT ")
        .bind(i64::try_from(query.limit).unwrap_or(i64::MAX));
    let mut tx = db
        .read(format!("reading log events of {group:?} / {stream:?}"))
        .await?;
    require_stream(&mut tx, group, stream).await?;
    let rows: Vec<EventRow> = tx.fetch_all(sql).await?;
    let mut events: Vec<LogEventRecord> = rows.into_iter().map(event).collect();
    if matches!(cursor, Cursor::Before(..)) {
        events.reverse();
    }
    let (forward, backward) = match (events.first(), events.last()) {
        (Some(first), Some(last)) => (
            Cursor::After(last.timestamp_ms, last.id),
            Cursor::Before(first.timestamp_ms, first.id),
        ),
        // Nothing (more) in this direction: hand the caller's position back.
        _ if query.token.is_some() => match cursor {
            Cursor::After(..) => (cursor, cursor.flipped()),
            Cursor::Before(..) => (cursor.flipped(), cursor),
        },
        // An empty window: forward from the very start picks up events put later.
        _ => (
            Cursor::After(i64::MIN, i64::MIN),
            Cursor::Before(i64::MIN, i64::MIN),
        ),
    };
    Ok(LogEventsPage {
        events,
        next_forward_token: forward.token(),
        next_backward_token: backward.token(),
    })
}

pub(super) async fn filter_log_events(
    db: &Db,
    group: &str,
    query: &LogFilterQuery,
) -> Result<FilteredLogEvents> {
    if query.limit == 0 {
        return Err(invalid("limit must be at least 1"));
    }
    if query.stream_names.is_some() && query.stream_prefix.is_some() {
        return Err(invalid(
            "logStreamNames and logStreamNamePrefix cannot both be given",
        ));
    }
    if query.stream_names.as_ref().is_some_and(Vec::is_empty) {
        return Err(invalid("logStreamNames must name at least one stream"));
    }
    let pattern = FilterPattern::parse(query.pattern.as_deref().unwrap_or(""))?;
    let mut after = match query.token.as_deref() {
        None => (i64::MIN, i64::MIN),
        Some(token) => {
            let bad = || invalid(format!("The specified nextToken {token:?} is not valid."));
            let (ts, id) = token
                .strip_prefix("n/")
                .and_then(|rest| rest.split_once('/'))
                .ok_or_else(bad)?;
            (
                ts.parse().map_err(|_| bad())?,
                id.parse().map_err(|_| bad())?,
            )
        }
    };
    let mut tx = db
        .read(format!("filtering log events of {group:?}"))
        .await?;
    require_group(&mut tx, group).await?;
    let mut events = Vec::new();
    loop {
        let mut sql = Sql::new(SELECT_EVENT);
        sql.push(" WHERE group_name = ").bind(group);
        if let Some(names) = &query.stream_names {
            sql.push(" AND stream_name IN (");
            for (i, name) in names.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind(name);
            }
            sql.push(")");
        }
        if let Some(prefix) = &query.stream_prefix {
            push_prefix(&mut sql, "stream_name", prefix);
        }
        push_window(&mut sql, query.start_ms, query.end_ms);
        sql.push(" AND (timestamp_ms, id) > (")
            .bind(after.0)
            .push(", ")
            .bind(after.1)
            .push(") ORDER BY timestamp_ms ASC, id ASC LIMIT ")
            .bind(FILTER_CHUNK);
        let rows: Vec<EventRow> = tx.fetch_all(sql).await?;
        let exhausted = rows.len() < usize::try_from(FILTER_CHUNK).unwrap_or(usize::MAX);
        for row in rows {
            let e = event(row);
            after = (e.timestamp_ms, e.id);
            if pattern.matches(&e.message) {
                events.push(e);
                if events.len() == query.limit {
                    return Ok(FilteredLogEvents {
                        events,
                        next_token: Some(format!("n/{}/{}", after.0, after.1)),
                    });
                }
            }
        }
        if exhausted {
            return Ok(FilteredLogEvents {
                events,
                next_token: None,
            });
        }
    }
}
