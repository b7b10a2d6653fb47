//! CloudWatch Logs: groups, streams, putting events, reading them forward and backward, and
//! filtering them with the term syntax.

use ferrule_store::{
    LogEventsQuery, LogFilterQuery, LogStreamOrder, NewLogEvent, PageRequest, Registry,
    RegistryError,
};

use crate::common::*;

fn ev(timestamp_ms: i64, message: &str) -> NewLogEvent {
    NewLogEvent {
        timestamp_ms,
        message: message.to_owned(),
    }
}

fn page(size: usize, marker: Option<String>, ascending: bool) -> PageRequest {
    PageRequest {
        marker,
        page_size: size,
        ascending,
    }
}

async fn group_names(reg: &Registry, prefix: Option<&str>, size: usize) -> Vec<String> {
    let mut names = Vec::new();
    let mut marker = None;
    loop {
        let p = ok!(reg.describe_log_groups(prefix, &page(size, marker, true)));
        assert!(p.items.len() <= size);
        names.extend(p.items.into_iter().map(|g| g.name));
        match p.next_marker {
            Some(m) => marker = Some(m),
            None => return names,
        }
    }
}

pub(crate) async fn log_groups_create_describe_delete(reg: Registry) {
    for name in [
        "/aws/lambda/b",
        "/aws/lambda/a",
        "/ferrule/rules",
        "/aws/lambdaX",
    ] {
        ok!(reg.create_log_group(name, 5));
    }
    let e = err!(reg.create_log_group("/aws/lambda/a", 6));
    assert_variant!(e, RegistryError::AlreadyExists { kind: "Log group", ref id } if id == "/aws/lambda/a");

    assert_eq!(
        group_names(&reg, None, 2).await,
        [
            "/aws/lambda/a",
            "/aws/lambda/b",
            "/aws/lambdaX",
            "/ferrule/rules"
        ]
    );
    assert_eq!(
        group_names(&reg, Some("/aws/lambda/"), 1).await,
        ["/aws/lambda/a", "/aws/lambda/b"]
    );
    assert_eq!(
        group_names(&reg, Some("/AWS"), 10).await,
        Vec::<String>::new(),
        "prefixes are case-sensitive"
    );
    let first = ok!(reg.describe_log_groups(Some("/ferrule"), &PageRequest::first(5)));
    assert_eq!(first.items.len(), 1);
    assert_eq!(first.items[0].created_ms, 5);
    assert_eq!(first.items[0].retention_in_days, None);

    ok!(reg.put_retention_policy("/ferrule/rules", Some(14)));
    let g = ok!(reg.describe_log_groups(Some("/ferrule"), &PageRequest::first(5)));
    assert_eq!(g.items[0].retention_in_days, Some(14));
    ok!(reg.put_retention_policy("/ferrule/rules", None));
    let g = ok!(reg.describe_log_groups(Some("/ferrule"), &PageRequest::first(5)));
    assert_eq!(g.items[0].retention_in_days, None);
    let e = err!(reg.put_retention_policy("/nope", Some(1)));
    assert_variant!(
        e,
        RegistryError::NotFound {
            kind: "Log group",
            ..
        }
    );

    // Deleting cascades: the stream and its events go, and a new group of the same name
    // starts empty.
    ok!(reg.create_log_stream("/aws/lambda/a", "s", 6));
    ok!(reg.put_log_events("/aws/lambda/a", "s", &[ev(1, "old")], 7));
    ok!(reg.delete_log_group("/aws/lambda/a"));
    let e = err!(reg.delete_log_group("/aws/lambda/a"));
    assert_variant!(e, RegistryError::NotFound { kind: "Log group", ref id } if id == "/aws/lambda/a");
    let e = err!(reg.create_log_stream("/aws/lambda/a", "s", 8));
    assert_variant!(
        e,
        RegistryError::NotFound {
            kind: "Log group",
            ..
        }
    );
    ok!(reg.create_log_group("/aws/lambda/a", 9));
    let streams = ok!(reg.describe_log_streams(
        "/aws/lambda/a",
        None,
        LogStreamOrder::Name,
        &PageRequest::first(5)
    ));
    assert!(streams.items.is_empty(), "{streams:?}");
    ok!(reg.create_log_stream("/aws/lambda/a", "s", 10));
    let filtered = ok!(reg.filter_log_events(
        "/aws/lambda/a",
        &LogFilterQuery {
            limit: 10,
            ..LogFilterQuery::default()
        }
    ));
    assert!(filtered.events.is_empty(), "{filtered:?}");
    assert_eq!(
        group_names(&reg, Some("/aws/lambda/"), 10).await,
        ["/aws/lambda/a", "/aws/lambda/b"]
    );
}

pub(crate) async fn log_streams_describe_orders_and_pages(reg: Registry) {
    ok!(reg.create_log_group("g", 1));
    ok!(reg.create_log_group("other", 1));
    ok!(reg.create_log_stream("other", "zz", 1));
    for (i, name) in ["2026/11/29/c", "2026/11/29/a", "2026/11/28/b", "x"]
        .into_iter()
        .enumerate()
    {
        ok!(reg.create_log_stream("g", name, 100 + i as i64));
    }
    let e = err!(reg.create_log_stream("g", "x", 200));
    assert_variant!(e, RegistryError::AlreadyExists { kind: "Log stream", ref id } if id == "x");
    // Same name in another group is fine.
    ok!(reg.create_log_stream("other", "x", 1));

    ok!(reg.put_log_events("g", "2026/11/29/a", &[ev(50, "a1"), ev(70, "a2")], 1_000));
    ok!(reg.put_log_events("g", "2026/11/29/a", &[ev(10, "a0")], 2_000));
    ok!(reg.put_log_events("g", "x", &[ev(60, "x")], 3_000));

    let names = |p: &ferrule_store::Page<ferrule_store::LogStreamRecord>| {
        p.items.iter().map(|s| s.name.clone()).collect::<Vec<_>>()
    };
    let all =
        ok!(reg.describe_log_streams("g", None, LogStreamOrder::Name, &PageRequest::first(10)));
    assert_eq!(
        names(&all),
        ["2026/11/28/b", "2026/11/29/a", "2026/11/29/c", "x"]
    );
    let a = &all.items[1];
    assert_eq!(
        (
            a.created_ms,
            a.first_event_ms,
            a.last_event_ms,
            a.last_ingestion_ms
        ),
        (101, Some(10), Some(70), Some(2_000)),
        "first/last event times span every batch; ingestion is the latest put"
    );
    let b = &all.items[0];
    assert_eq!(
        (b.first_event_ms, b.last_event_ms, b.last_ingestion_ms),
        (None, None, None)
    );

    let desc = ok!(reg.describe_log_streams(
        "g",
        Some("2026/11/29/"),
        LogStreamOrder::Name,
        &page(1, None, false)
    ));
    assert_eq!(names(&desc), ["2026/11/29/c"]);
    let desc2 = ok!(reg.describe_log_streams(
        "g",
        Some("2026/11/29/"),
        LogStreamOrder::Name,
        &page(1, desc.next_marker.clone(), false)
    ));
    assert_eq!(names(&desc2), ["2026/11/29/a"]);
    assert_eq!(desc2.next_marker, None);

    // By last event time, descending, paged one at a time: x (60)... no, a (70), x (60),
    // then the streams without events (as 0) by name descending.
    let mut order = Vec::new();
    let mut marker = None;
    loop {
        let p = ok!(reg.describe_log_streams(
            "g",
            None,
            LogStreamOrder::LastEventTime,
            &page(1, marker, false)
        ));
        order.extend(names(&p));
        match p.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    assert_eq!(order, ["2026/11/29/a", "x", "2026/11/29/c", "2026/11/28/b"]);

    let e = err!(reg.describe_log_streams(
        "g",
        Some("x"),
        LogStreamOrder::LastEventTime,
        &PageRequest::first(5)
    ));
    assert_variant!(e, RegistryError::InvalidRequest(ref m) if m.contains("LastEventTime"));
    let e =
        err!(reg.describe_log_streams("nope", None, LogStreamOrder::Name, &PageRequest::first(5)));
    assert_variant!(
        e,
        RegistryError::NotFound {
            kind: "Log group",
            ..
        }
    );
    // A marker of the log group list is refused by the stream list.
    ok!(reg.create_log_group("g2", 1));
    let groups = ok!(reg.describe_log_groups(None, &PageRequest::first(1)));
    let e = err!(reg.describe_log_streams(
        "g",
        None,
        LogStreamOrder::Name,
        &page(1, groups.next_marker, true)
    ));
    assert_variant!(e, RegistryError::InvalidRequest(_));
}

pub(crate) async fn put_log_events_validates_and_creates_nothing(reg: Registry) {
    let e = err!(reg.put_log_events("g", "s", &[ev(1, "m")], 1));
    assert_variant!(e, RegistryError::NotFound { kind: "Log group", ref id } if id == "g");
    ok!(reg.create_log_group("g", 1));
    let e = err!(reg.put_log_events("g", "s", &[ev(1, "m")], 1));
    assert_variant!(e, RegistryError::NotFound { kind: "Log stream", ref id } if id == "s");
    assert!(
        ok!(reg.describe_log_streams("g", None, LogStreamOrder::Name, &PageRequest::first(5)))
            .items
            .is_empty(),
        "put creates no stream"
    );
    ok!(reg.create_log_stream("g", "s", 1));
    let e = err!(reg.put_log_events("g", "s", &[], 1));
    assert_variant!(e, RegistryError::InvalidRequest(_));
    let e = err!(reg.put_log_events("g", "s", &[ev(5, "a"), ev(5, "b"), ev(4, "c")], 1));
    assert_variant!(e, RegistryError::InvalidRequest(ref m) if m.contains("chronological order"));
    let all = LogEventsQuery {
        start_from_head: true,
        limit: 100,
        ..LogEventsQuery::default()
    };
    assert!(
        ok!(reg.get_log_events("g", "s", &all)).events.is_empty(),
        "a refused batch stores nothing"
    );
    // Equal timestamps are in order; older batches after newer ones are fine.
    ok!(reg.put_log_events("g", "s", &[ev(5, "a"), ev(5, "b")], 10));
    ok!(reg.put_log_events("g", "s", &[ev(1, "c"), ev(9, "d")], 20));
    let got = ok!(reg.get_log_events("g", "s", &all)).events;
    let summary: Vec<_> = got
        .iter()
        .map(|e| {
            (
                e.timestamp_ms,
                e.message.as_str(),
                e.ingestion_ms,
                e.stream.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "c", 20, "s"),
            (5, "a", 10, "s"),
            (5, "b", 10, "s"),
            (9, "d", 20, "s")
        ]
    );
    let mut ids: Vec<i64> = got.iter().map(|e| e.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "event ids are unique");
    // Messages are stored as given, any text.
    let odd = "multi\nline ünïcödé \"quoted\" % _ \\";
    ok!(reg.put_log_events("g", "s", &[ev(100, odd)], 30));
    let last = ok!(reg.get_log_events(
        "g",
        "s",
        &LogEventsQuery {
            limit: 1,
            ..LogEventsQuery::default()
        }
    ));
    assert_eq!(last.events[0].message, odd);
}

fn messages(events: &[ferrule_store::LogEventRecord]) -> Vec<String> {
    events.iter().map(|e| e.message.clone()).collect()
}

pub(crate) async fn get_log_events_pages_both_ways(reg: Registry) {
    ok!(reg.create_log_group("g", 1));
    ok!(reg.create_log_stream("g", "s", 1));
    ok!(reg.create_log_stream("g", "empty", 1));
    // e0..e9 at 100, 110, ..., with e4 and e5 sharing a timestamp.
    let events: Vec<NewLogEvent> = (0..10)
        .map(|i| ev(100 + 10 * i.min(4) + 10 * (i - 5).max(0), &format!("e{i}")))
        .collect();
    ok!(reg.put_log_events("g", "s", &events, 1_000));
    let q = |head: bool, limit: usize, token: Option<String>| LogEventsQuery {
        start_from_head: head,
        limit,
        token,
        ..LogEventsQuery::default()
    };

    // From the head, forward in pages of 3, until the token comes back unchanged.
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let p = ok!(reg.get_log_events("g", "s", &q(true, 3, token.clone())));
        pages += 1;
        assert!(pages < 10, "forward paging does not end");
        if token.as_deref() == Some(p.next_forward_token.as_str()) {
            assert!(p.events.is_empty());
            break;
        }
        seen.extend(messages(&p.events));
        token = Some(p.next_forward_token);
    }
    assert_eq!(seen, (0..10).map(|i| format!("e{i}")).collect::<Vec<_>>());

    // From the tail (the default): the newest events, oldest first; then backward.
    let tail = ok!(reg.get_log_events("g", "s", &q(false, 3, None)));
    assert_eq!(messages(&tail.events), ["e7", "e8", "e9"]);
    let back = ok!(reg.get_log_events(
        "g",
        "s",
        &q(false, 3, Some(tail.next_backward_token.clone()))
    ));
    assert_eq!(messages(&back.events), ["e4", "e5", "e6"]);
    let back2 = ok!(reg.get_log_events(
        "g",
        "s",
        &q(true, 3, Some(back.next_backward_token.clone()))
    ));
    assert_eq!(
        messages(&back2.events),
        ["e1", "e2", "e3"],
        "a token's direction wins over startFromHead"
    );
    let back3 = ok!(reg.get_log_events(
        "g",
        "s",
        &q(false, 3, Some(back2.next_backward_token.clone()))
    ));
    assert_eq!(messages(&back3.events), ["e0"]);
    let start = ok!(reg.get_log_events(
        "g",
        "s",
        &q(false, 3, Some(back3.next_backward_token.clone()))
    ));
    assert!(start.events.is_empty());
    assert_eq!(
        start.next_backward_token, back3.next_backward_token,
        "the start: same token back"
    );
    // And forward again from the start.
    let fwd = ok!(reg.get_log_events(
        "g",
        "s",
        &q(false, 2, Some(start.next_forward_token.clone()))
    ));
    assert_eq!(messages(&fwd.events), ["e0", "e1"]);
    // Forward from a middle page, then new events show up after the end.
    let fwd = ok!(reg.get_log_events(
        "g",
        "s",
        &q(false, 10, Some(back.next_forward_token.clone()))
    ));
    assert_eq!(messages(&fwd.events), ["e7", "e8", "e9"]);
    let end = ok!(reg.get_log_events(
        "g",
        "s",
        &q(false, 10, Some(fwd.next_forward_token.clone()))
    ));
    assert!(end.events.is_empty());
    assert_eq!(end.next_forward_token, fwd.next_forward_token);
    ok!(reg.put_log_events("g", "s", &[ev(200, "e10")], 2_000));
    let more = ok!(reg.get_log_events(
        "g",
        "s",
        &q(false, 10, Some(end.next_forward_token.clone()))
    ));
    assert_eq!(messages(&more.events), ["e10"]);

    // Time window: start inclusive, end exclusive.
    let window = ok!(reg.get_log_events(
        "g",
        "s",
        &LogEventsQuery {
            start_ms: Some(130),
            end_ms: Some(160),
            start_from_head: true,
            limit: 100,
            token: None,
        }
    ));
    assert_eq!(messages(&window.events), ["e3", "e4", "e5", "e6"]);

    // An empty stream: no events, and forward polling later finds new ones.
    let empty = ok!(reg.get_log_events("g", "empty", &q(false, 5, None)));
    assert!(empty.events.is_empty());
    ok!(reg.put_log_events("g", "empty", &[ev(1, "late")], 3_000));
    let late = ok!(reg.get_log_events("g", "empty", &q(false, 5, Some(empty.next_forward_token))));
    assert_eq!(messages(&late.events), ["late"]);

    // Errors.
    let e = err!(reg.get_log_events("g", "nope", &q(true, 1, None)));
    assert_variant!(
        e,
        RegistryError::NotFound {
            kind: "Log stream",
            ..
        }
    );
    let e = err!(reg.get_log_events("nope", "s", &q(true, 1, None)));
    assert_variant!(
        e,
        RegistryError::NotFound {
            kind: "Log group",
            ..
        }
    );
    for bad in ["", "x", "f/1", "f/a/1", "q/1/1", "n/1/1"] {
        let e = err!(reg.get_log_events("g", "s", &q(true, 1, Some(bad.to_owned()))));
        assert_variant!(e, RegistryError::InvalidRequest(_));
    }
    let e = err!(reg.get_log_events("g", "s", &q(true, 0, None)));
    assert_variant!(e, RegistryError::InvalidRequest(_));
}

pub(crate) async fn filter_log_events_terms_windows_and_pages(reg: Registry) {
    ok!(reg.create_log_group("g", 1));
    for s in ["app/1", "app/2", "sys"] {
        ok!(reg.create_log_stream("g", s, 1));
    }
    ok!(reg.put_log_events(
        "g",
        "app/1",
        &[
            ev(10, "ERROR read timeout"),
            ev(30, "INFO started"),
            ev(50, "WARN low disk")
        ],
        1
    ));
    ok!(reg.put_log_events(
        "g",
        "app/2",
        &[
            ev(20, "ERROR timeout on read"),
            ev(40, "ERROR fatal, will retry")
        ],
        1
    ));
    ok!(reg.put_log_events("g", "sys", &[ev(25, "ERROR sys")], 1));
    let filter = |pattern: &str| LogFilterQuery {
        pattern: Some(pattern.to_owned()),
        limit: 100,
        ..LogFilterQuery::default()
    };
    let run = |q: LogFilterQuery| {
        let reg = reg.clone();
        async move { messages(&ok!(reg.filter_log_events("g", &q)).events) }
    };
    assert_eq!(run(filter("")).await.len(), 6);
    assert_eq!(
        run(filter("ERROR timeout")).await,
        ["ERROR read timeout", "ERROR timeout on read"],
        "every term, interleaved by time across streams"
    );
    assert_eq!(
        run(filter("\"read timeout\"")).await,
        ["ERROR read timeout"]
    );
    assert_eq!(
        run(filter("?WARN ?INFO")).await,
        ["INFO started", "WARN low disk"]
    );
    assert_eq!(
        run(filter("ERROR -retry -sys")).await,
        ["ERROR read timeout", "ERROR timeout on read"]
    );
    assert!(run(filter("error")).await.is_empty(), "case-sensitive");
    let streams = run(LogFilterQuery {
        stream_names: Some(vec!["app/2".to_owned(), "sys".to_owned()]),
        ..filter("ERROR")
    })
    .await;
    assert_eq!(
        streams,
        [
            "ERROR timeout on read",
            "ERROR sys",
            "ERROR fatal, will retry"
        ]
    );
    let by_prefix = ok!(reg.filter_log_events(
        "g",
        &LogFilterQuery {
            stream_prefix: Some("app/".to_owned()),
            ..filter("ERROR")
        }
    ));
    let who: Vec<_> = by_prefix
        .events
        .iter()
        .map(|e| (e.stream.as_str(), e.timestamp_ms))
        .collect();
    assert_eq!(who, [("app/1", 10), ("app/2", 20), ("app/2", 40)]);
    assert_eq!(
        run(LogFilterQuery {
            start_ms: Some(20),
            end_ms: Some(40),
            ..filter("")
        })
        .await,
        ["ERROR timeout on read", "ERROR sys", "INFO started"],
        "start inclusive, end exclusive"
    );

    // Pages of 2 matching events.
    let mut seen = Vec::new();
    let mut token = None;
    for _ in 0..10 {
        let p = ok!(reg.filter_log_events(
            "g",
            &LogFilterQuery {
                limit: 2,
                token: token.clone(),
                ..filter("ERROR")
            }
        ));
        assert!(p.events.len() <= 2);
        seen.extend(messages(&p.events));
        token = p.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(token, None, "paging ends");
    assert_eq!(seen, run(filter("ERROR")).await);
    assert_eq!(seen.len(), 4);

    // Errors.
    for bad in ["{ $.level = \"x\" }", "[a, b]", "\"open"] {
        let e = err!(reg.filter_log_events("g", &filter(bad)));
        assert_variant!(e, RegistryError::InvalidRequest(ref m) if m.contains("filterPattern"));
    }
    let e = err!(reg.filter_log_events("nope", &filter("")));
    assert_variant!(
        e,
        RegistryError::NotFound {
            kind: "Log group",
            ..
        }
    );
    let e = err!(reg.filter_log_events(
        "g",
        &LogFilterQuery {
            stream_names: Some(vec!["sys".to_owned()]),
            stream_prefix: Some("a".to_owned()),
            ..filter("")
        }
    ));
    assert_variant!(e, RegistryError::InvalidRequest(_));
    let e = err!(reg.filter_log_events(
        "g",
        &LogFilterQuery {
            token: Some("f/1/1".to_owned()),
            ..filter("")
        }
    ));
    assert_variant!(e, RegistryError::InvalidRequest(_));
}

pub(crate) async fn log_writes_announce_nothing(reg: Registry) {
    let mut feed = reg.subscribe();
    ok!(reg.create_log_group("g", 1));
    ok!(reg.create_log_stream("g", "s", 1));
    ok!(reg.put_log_events("g", "s", &[ev(1, "m")], 1));
    ok!(reg.put_retention_policy("g", Some(1)));
    ok!(reg.delete_log_group("g"));
    assert_eq!(drain(&mut feed), vec![]);
}
