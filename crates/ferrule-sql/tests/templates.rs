//! Substitution templates: `${expr}` against the original message, `$$` for `$`, how each kind
//! of value renders, and errors with positions.

mod common;

use common::{PAYLOAD, TOPIC, TestEnv, message};
use ferrule_sql::{Message, SqlVersion, Statement, Template, render_template};

fn render(template: &str, msg: &Message<'_>) -> String {
    match render_template(template, msg, &mut TestEnv::default()) {
        Ok(s) => s,
        Err(e) => format!("error:{e}"),
    }
}

#[test]
fn substitutions() {
    let msg = message(TOPIC, PAYLOAD.as_bytes());
    let cases = [
        ("${topic()}/republish", "things/dev1/telemetry/republish"),
        (
            "$$aws/things/${clientid()}/shadow/update",
            "$aws/things/dev1/shadow/update",
        ),
        (
            "${color}-${temperature}-${t}-${b}-${n}-${missing}-${arr}-${o.a.b[1]}",
            r#"red-50-22.5-true-null--[1,2,3]-{"c":"deep"}"#,
        ),
        ("${upper(color) + '!'}", "RED!"),
        ("${get(*, 'color')}", "red"),
        ("${'}'}{", "}{"),
        ("${ {'a': 1, 'b': [color]} }", r#"{"a":1,"b":["red"]}"#),
        ("cost: $5 and $", "cost: $5 and $"),
        ("$$$$ $${x}", "$$ ${x}"),
        (
            "${newuuid()}/${newuuid()}",
            "00000000-0000-4000-8000-000000000001/00000000-0000-4000-8000-000000000002",
        ),
        ("${topic(2)}${topic(3)}", "dev1telemetry"),
        (
            "${timestamp() % 1000}|${principal()}|${accountid()}",
            "0|abc123certid|123456789012",
        ),
        (
            "${CASE WHEN temperature > 40 THEN 'hot' ELSE 'cold' END}",
            "hot",
        ),
        ("no substitutions", "no substitutions"),
        ("", ""),
        ("é${color}é", "éredé"),
        ("${(SELECT VALUE n FROM e)}", r#"["temperature","light"]"#),
        (
            "${encode(*, 'base64')}",
            "eyJjb2xvciI6InJlZCIsInRlbXBlcmF0dXJlIjo1MCwidCI6MjIuNSwicyI6IjEyIiwiYiI6dHJ1ZSwibiI6bnVsbCwiYXJyIjpbMSwyLDNdLCJvIjp7ImEiOnsiYiI6WzEwLHsiYyI6ImRlZXAifV19fSwiZSI6W3sibiI6InRlbXBlcmF0dXJlIiwidiI6MjIuNX0seyJuIjoibGlnaHQiLCJ2IjoxMzV9XSwic3RyIjoiIEhpIFRoZXJlICIsInZhbHVlIjo3LCJ3IjoxMC4wfQ==",
        ),
    ];
    for (template, want) in cases {
        assert_eq!(render(template, &msg), want, "{template}");
    }
}

#[test]
fn templates_see_the_original_message_not_the_select_output() {
    let msg = message(TOPIC, PAYLOAD.as_bytes());
    let stmt = Statement::parse("SELECT color AS c FROM 'a'", SqlVersion::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let out = stmt
        .evaluate(&msg, &mut TestEnv::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("rejected"));
    assert_eq!(out.as_bytes(), br#"{"c":"red"}"#);
    assert_eq!(render("[${c}] [${color}]", &msg), "[] [red]");
}

#[test]
fn binary_payloads_have_no_fields() {
    let msg = message(TOPIC, b"\x00\xff");
    assert_eq!(
        render("device/${device_id}/${topic(1)}", &msg),
        "device//things"
    );
    assert_eq!(render("${encode(*, 'base64')}", &msg), "AP8=");
}

#[test]
fn errors_name_the_position_in_the_template() {
    let msg = message(TOPIC, PAYLOAD.as_bytes());
    let cases = [
        (
            "${topic()",
            "error:Expected '}' to close the '${' at 1:1 but found end of input at 1:10",
        ),
        ("${}", "error:Expected an expression but found '}' at 1:3"),
        (
            "a/\n  ${1 +}",
            "error:Expected an expression but found '}' at 2:8",
        ),
        ("x ${nope()}", "error:Unknown function 'nope' at 1:5"),
        (
            "${color color}",
            "error:Expected '}' to close the '${' at 1:1 but found 'color' at 1:9",
        ),
        ("${'abc}", "error:Unterminated string at 1:3"),
    ];
    for (template, want) in cases {
        assert_eq!(render(template, &msg), want, "{template}");
    }
}

#[test]
fn templates_use_the_rules_sql_version() {
    let msg = message(TOPIC, PAYLOAD.as_bytes());
    let v1 = Template::parse("${w}/${sql_version()}", SqlVersion::V2015_10_08)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v1.render(&msg, &mut TestEnv::default()), "10.0/2015-10-08");
    let v2 = Template::parse("${w}/${sql_version()}", SqlVersion::V2016_03_23)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v2.render(&msg, &mut TestEnv::default()), "10/2016-03-23");
    assert!(Template::parse("${encode(*, 'base64')}", SqlVersion::V2015_10_08).is_err());
}

#[test]
fn display_round_trips() {
    for text in [
        "$$aws/things/${clientid()}/shadow/${topic(2)}",
        "${a + b * c}${'}'}$$",
        "plain",
        "${ {'k': [1, 2]} }",
    ] {
        let t = Template::parse(text, SqlVersion::default()).unwrap_or_else(|e| panic!("{e}"));
        let again = Template::parse(&t.to_string(), SqlVersion::default())
            .unwrap_or_else(|e| panic!("{}: {e}", t));
        assert_eq!(again, t, "{text} -> {t}");
    }
    let t = Template::parse("$${x}-${ a  +  1 }", SqlVersion::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.to_string(), "$${x}-${a + 1}");
}
