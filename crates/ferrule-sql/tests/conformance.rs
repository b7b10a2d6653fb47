//! AWS IoT SQL conformance: statements × messages → outputs, from the AWS IoT developer guide's
//! pages on SELECT, WHERE, data types, operators, functions, literals, CASE, nested queries,
//! SQL versions and binary payloads (the documented examples are here, with their documented
//! results), plus parse errors with their positions.
//!
//! Each table runs every row and reports all mismatches at once. Outcomes are written as in
//! `common::outcome`: `json:<text>`, `raw:<bytes>`, `none`, `parse:<error>`, `eval:<error>`.

mod common;

use common::{PAYLOAD, TOPIC, message, outcome};
use ferrule_sql::{Message, SqlVersion};

const V1: SqlVersion = SqlVersion::V2015_10_08;
const V2: SqlVersion = SqlVersion::V2016_03_23;

fn check(table: &[(&str, &str)], version: SqlVersion, msg: &Message<'_>) {
    let mut failures = Vec::new();
    for (sql, want) in table {
        let got = outcome(sql, version, msg);
        if got != *want {
            failures.push(format!("  {sql}\n    want {want}\n    got  {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
}

/// SELECT, aliases, nested fields, Undefined fields, WHERE.
const SELECT: &[(&str, &str)] = &[
    ("SELECT color FROM 'a'", r#"json:{"color":"red"}"#),
    (
        "SELECT color AS c, temperature AS f FROM 'a'",
        r#"json:{"c":"red","f":50}"#,
    ),
    (
        "SELECT color, missing, o.zzz AS z, missing.deeper AS d FROM 'a'",
        r#"json:{"color":"red"}"#,
    ),
    (
        "SELECT o.a.b[1].c AS c, arr[0] AS first, arr[5] AS none, arr[-1] AS neg FROM 'a'",
        r#"json:{"c":"deep","first":1}"#,
    ),
    (
        "SELECT o.a FROM 'a'",
        r#"json:{"a":{"b":[10,{"c":"deep"}]}}"#,
    ),
    (
        "SELECT temperature + 1, upper(color) FROM 'a'",
        r#"json:{"_1":51,"_2":"RED"}"#,
    ),
    (
        "SELECT color AS x.y, temperature AS x.z FROM 'a'",
        r#"json:{"x":{"y":"red","z":50}}"#,
    ),
    (
        "SELECT color AS 'my-color', t AS \"a.b\" FROM 'a'",
        r#"json:{"my-color":"red","a.b":22.5}"#,
    ),
    ("SELECT VALUE color FROM 'a'", r#"json:"red""#),
    ("SELECT VALUE arr FROM 'a'", "json:[1,2,3]"),
    ("SELECT VALUE o.a.b[0] FROM 'a'", "json:10"),
    ("SELECT VALUE missing FROM 'a'", "raw:"),
    ("SELECT value FROM 'a'", r#"json:{"value":7}"#),
    (
        "SELECT value + 1 AS v, value FROM 'a'",
        r#"json:{"v":8,"value":7}"#,
    ),
    (
        "SELECT color FROM 'a' WHERE temperature > 40",
        r#"json:{"color":"red"}"#,
    ),
    ("SELECT color FROM 'a' WHERE temperature > 50", "none"),
    ("SELECT color FROM 'a' WHERE missing > 1", "none"),
    (
        "SELECT color FROM 'a' WHERE 'TRUE'",
        r#"json:{"color":"red"}"#,
    ),
    ("SELECT color FROM 'a' WHERE 1", "none"),
    ("SELECT color FROM 'a' WHERE n", "none"),
    ("SELECT temperature AS x FROM 'a' WHERE x = 50", "none"),
    (
        "SELECT color AS my_color FROM 'a' WHERE temperature > 50 AND color <> 'red'",
        "none",
    ),
    (
        "sElEcT color As c FrOm 'a' wHeRe temperature > 1 AnD NoT false",
        r#"json:{"c":"red"}"#,
    ),
    (
        "SELECT\n  color AS c\nFROM 'things/+/telemetry'\nWHERE topic(2) = clientid()",
        r#"json:{"c":"red"}"#,
    ),
    (
        "SELECT topic(1, 2) AS a, upper() AS b, color AS c FROM 'a'",
        r#"json:{"c":"red"}"#,
    ),
];

/// Literals, numbers, and SQL 2016-03-23's whole numbers as Int.
const LITERALS: &[(&str, &str)] = &[
    (
        "SELECT 1 AS i, 2.5 AS d, 10.0 AS w, -3 AS neg, 'it''s' AS s, \"dq\" AS d2, true AS t, NULL AS nl, w AS pw FROM 'a'",
        r#"json:{"i":1,"d":2.5,"w":10,"neg":-3,"s":"it's","d2":"dq","t":true,"nl":null,"pw":10}"#,
    ),
    (
        r"SELECT 'a\nb\u00e9\'' AS s FROM 'a'",
        r#"json:{"s":"a\nbé'"}"#,
    ),
    (
        "SELECT [temperature, color, missing] AS a, {'k': color, 'm': missing, k2: 1} AS o, [] AS e, {} AS eo FROM 'a'",
        r#"json:{"a":[50,"red"],"o":{"k":"red","k2":1},"e":[],"eo":{}}"#,
    ),
    (
        "SELECT {'latitude': get(arr, 0), 'longitude': get(arr, 1)} AS lat_long FROM 'a'",
        r#"json:{"lat_long":{"latitude":1,"longitude":2}}"#,
    ),
    (
        "SELECT 9223372036854775807 + 1 AS a, 99999999999999999999 AS b FROM 'a'",
        r#"json:{"a":9.223372036854776e+18,"b":1e+20}"#,
    ),
];

/// Arithmetic (the `+ - * / %` tables).
const ARITHMETIC: &[(&str, &str)] = &[
    (
        "SELECT 7 + 2 AS a, 7 - 2 AS b, 7 * 2 AS c, 7 / 2 AS d, 7 % 2 AS e, t / 2 AS f, -7 % 3 AS g, 7.0 / 2 AS h FROM 'a'",
        r#"json:{"a":9,"b":5,"c":14,"d":3,"e":1,"f":11.25,"g":-1,"h":3}"#,
    ),
    (
        "SELECT temperature + t AS a, t * 2 AS b, t - 0.5 AS c FROM 'a'",
        r#"json:{"a":72.5,"b":45,"c":22}"#,
    ),
    (
        "SELECT s - 2 AS a, s * 2 AS b, s + 2 AS c, 2 + s AS d, color + 1 AS e, color - 1 AS f, s / 5 AS g, s % 5 AS h FROM 'a'",
        r#"json:{"a":10,"b":24,"c":"122","d":"212","e":"red1","g":2.4,"h":2}"#,
    ),
    (
        "SELECT 'x' + arr AS a, 'x' + n AS b, 'x' + missing AS c, 'x' + b AS d, o + 'y' AS e, 'v' + 2.5 AS f FROM 'a'",
        r#"json:{"a":"x[1,2,3]","d":"xtrue","e":"{\"a\":{\"b\":[10,{\"c\":\"deep\"}]}}y","f":"v2.5"}"#,
    ),
    (
        "SELECT 1 / 0 AS a, 1.5 / 0 AS b, 5 % 0 AS c, 1 / 0.0 AS d, t % 0 AS e, 1 AS ok FROM 'a'",
        r#"json:{"ok":1}"#,
    ),
    (
        "SELECT b + 1 AS a, n + 1 AS c, arr * 2 AS d, b - 1 AS e, 1 AS ok FROM 'a'",
        r#"json:{"ok":1}"#,
    ),
    (
        "SELECT -temperature AS a, -t AS b, -s AS c, -color AS d, - -5 AS e, -(2 - 5) AS f FROM 'a'",
        r#"json:{"a":-50,"b":-22.5,"c":-12,"e":5,"f":3}"#,
    ),
    (
        "SELECT 2 + 3 * 4 AS a, (2 + 3) * 4 AS b, 10 - 2 - 3 AS c, 2 * 3 % 4 AS d, 100 / 10 / 5 AS e FROM 'a'",
        r#"json:{"a":14,"b":20,"c":5,"d":2,"e":2}"#,
    ),
    (
        "SELECT (temperature - 32) * 5 / 9 AS celsius, upper(color) AS my_color FROM 'a'",
        r#"json:{"celsius":10,"my_color":"RED"}"#,
    ),
];

/// Comparison, logic, IS, IN, CONTAINS.
const COMPARISON: &[(&str, &str)] = &[
    (
        "SELECT 1 = 1.0 AS a, '5' = 5 AS b, color = 'red' AS c, n = NULL AS d, arr = [1, 2, 3] AS e, arr = [3, 2, 1] AS f, o = {'a': {'b': [10, {'c': 'deep'}]}} AS g, missing = 1 AS h, b = true AS i, arr = 'x' AS j FROM 'a'",
        r#"json:{"a":true,"b":false,"c":true,"d":true,"e":true,"f":false,"g":true,"i":true,"j":false}"#,
    ),
    (
        "SELECT {'x': 1, 'y': [2]} = {'y': [2.0], 'x': 1.0} AS a, {'x': 1} = {'x': 1, 'y': 2} AS b FROM 'a'",
        r#"json:{"a":true,"b":false}"#,
    ),
    (
        "SELECT 1 <> 2 AS a, 'x' <> 1 AS b, n <> NULL AS c, 1 != 1 AS d, missing <> 1 AS e FROM 'a'",
        r#"json:{"a":true,"b":true,"c":false,"d":false}"#,
    ),
    (
        "SELECT temperature > 40 AS a, s < 13 AS b, '10' > '9' AS c, color > 'a' AS d, t >= 22.5 AS e, 3 <= 2 AS f, b < 1 AS g, n > 1 AS h, 2 >= 2 AS i FROM 'a'",
        r#"json:{"a":true,"b":true,"c":true,"e":true,"f":false,"i":true}"#,
    ),
    (
        "SELECT true AND false AS a, true OR false AS b, NOT b AS c, 'TRUE' AND true AS d, NOT 'false' AS e, 1 AND true AS f, NOT 1 AS g, false AND missing AS h, true OR missing AS i, 'yes' OR true AS j FROM 'a'",
        r#"json:{"a":false,"b":true,"c":false,"d":true,"e":true}"#,
    ),
    (
        "SELECT true OR false AND false AS a, NOT false AND false AS b, NOT 1 = 2 AS c, (true OR false) AND false AS d FROM 'a'",
        r#"json:{"a":true,"b":false,"c":true,"d":false}"#,
    ),
    (
        "SELECT n IS NULL AS a, missing IS NULL AS b, missing IS UNDEFINED AS c, color IS NOT UNDEFINED AS d, n IS NOT NULL AS e, n IS UNDEFINED AS f FROM 'a'",
        r#"json:{"a":true,"b":false,"c":true,"d":true,"e":false,"f":false}"#,
    ),
    (
        "SELECT 2 IN arr AS a, 5 IN arr AS b, 'red' IN [color, 'blue'] AS c, missing IN arr AS d, 1 IN color AS e, 2.0 IN arr AS f FROM 'a'",
        r#"json:{"a":true,"b":false,"c":true,"f":true}"#,
    ),
    (
        "SELECT arr CONTAINS 3 AS a, str CONTAINS 'Hi' AS b, color CONTAINS 'x' AS c, arr CONTAINS missing AS d, 5 CONTAINS 5 AS e FROM 'a'",
        r#"json:{"a":true,"b":true,"c":false}"#,
    ),
    (
        "SELECT color FROM 'a' WHERE color IN ['red', 'green']",
        r#"json:{"color":"red"}"#,
    ),
];

/// CASE, simple and searched.
const CASE: &[(&str, &str)] = &[
    (
        "SELECT CASE color WHEN 'green' THEN 'go' WHEN 'red' THEN 'stop' ELSE 'unknown' END AS i FROM 'a'",
        r#"json:{"i":"stop"}"#,
    ),
    (
        "SELECT CASE color WHEN 'green' THEN 'go' END AS i, 1 AS ok FROM 'a'",
        r#"json:{"ok":1}"#,
    ),
    (
        "SELECT CASE missing WHEN 'x' THEN 1 ELSE 2 END AS i, 1 AS ok FROM 'a'",
        r#"json:{"ok":1}"#,
    ),
    (
        "SELECT CASE WHEN temperature > 60 THEN 'hot' WHEN temperature > 40 THEN 'warm' ELSE 'cold' END AS i FROM 'a'",
        r#"json:{"i":"warm"}"#,
    ),
    (
        "SELECT CASE 10 WHEN w THEN 'ten' END AS i, CASE WHEN missing THEN 1 ELSE 0 END AS j FROM 'a'",
        r#"json:{"i":"ten","j":0}"#,
    ),
];

/// Nested object queries (2016-03-23).
const NESTED: &[(&str, &str)] = &[
    (
        "SELECT (SELECT VALUE n FROM e) AS sensors FROM 'a'",
        r#"json:{"sensors":["temperature","light"]}"#,
    ),
    (
        "SELECT (SELECT v FROM e WHERE n = 'temperature') AS temperature FROM 'a'",
        r#"json:{"temperature":[{"v":22.5}]}"#,
    ),
    (
        "SELECT get((SELECT v FROM e WHERE n = 'temperature'), 0).v AS temperature FROM 'a'",
        r#"json:{"temperature":22.5}"#,
    ),
    (
        "SELECT (SELECT b FROM o.a) AS x, (SELECT * FROM o.a WHERE false) AS y, (SELECT VALUE zz FROM e) AS z, (SELECT * FROM color) AS w FROM 'a'",
        r#"json:{"x":{"b":[10,{"c":"deep"}]},"z":[]}"#,
    ),
    (
        "SELECT VALUE transform('enrichArray', {'k': temperature}, e) FROM 'a'",
        r#"json:[{"n":"temperature","v":22.5,"k":50},{"n":"light","v":135,"k":50}]"#,
    ),
];

/// Message functions, `get`, `cast`, strings.
const FUNCTIONS: &[(&str, &str)] = &[
    (
        "SELECT topic() AS t, topic(1) AS a, topic(3) AS c, topic(4) AS d, topic(0) AS z, topic(2.4) AS r FROM 'a'",
        r#"json:{"t":"things/dev1/telemetry","a":"things","c":"telemetry","r":"dev1"}"#,
    ),
    (
        "SELECT clientid() AS c, principal() AS p, timestamp() AS ts, accountid() AS acc, traceid() AS tr, newuuid() AS u1, NEWUUID() AS u2, sql_version() AS v, rand() AS r FROM 'a'",
        r#"json:{"c":"dev1","p":"abc123certid","ts":1700000000000,"acc":"123456789012","tr":"trace-1","u1":"00000000-0000-4000-8000-000000000001","u2":"00000000-0000-4000-8000-000000000002","v":"2016-03-23","r":0.25}"#,
    ),
    (
        "SELECT get(arr, 1) AS a, get(o, 'a').b[0] AS b, get('abc', 1) AS c, get(arr, 9) AS d, get(arr, '2') AS e, get(arr, -1) AS f, get(*, 'color') AS g, get(o, 1) AS h, get(5, 0) AS i, arr[0.6] AS j, str[1] AS k FROM 'a'",
        r#"json:{"a":2,"b":10,"c":"b","e":3,"g":"red","j":2,"k":"H"}"#,
    ),
    (
        "SELECT cast(t AS Int) AS a, cast(-2.7 AS Int) AS b, cast(true AS Int) AS c, cast('12.9' AS Integer) AS d, cast(5 AS String) AS e, cast(arr AS varchar) AS f, cast(n AS String) AS g, cast(0 AS Boolean) AS h, cast('TRUE' AS Bool) AS i, cast(2 AS Decimal) AS j, cast(2.5 AS Double) AS k, cast(color AS Int) AS l, cast(false AS Decimal) AS m, cast(b AS nvarchar) AS p, cast(0.5 AS boolean) AS q FROM 'a'",
        r#"json:{"a":22,"b":-2,"c":1,"d":12,"e":"5","f":"[1,2,3]","h":false,"i":true,"j":2,"k":2.5,"m":0,"p":"true","q":true}"#,
    ),
    (
        "SELECT concat() AS a, concat(1) AS b, concat([1, 2], 3) AS c, concat([1], 'h', [4, 5]) AS d, concat('con', 'cat') AS e, concat(1, 'hello') AS f, concat('a', missing) AS g, concat(1, 2) AS h, concat('he', 'is', 'man') AS i FROM 'a'",
        r#"json:{"b":"1","c":[1,2,3],"d":[1,"h",4,5],"e":"concat","f":"1hello","h":"12","i":"heisman"}"#,
    ),
    (
        "SELECT lower('HeLLo') AS a, upper(color) AS b, lower(['HELLO']) AS c, upper(missing) AS d, upper(n) AS e, upper(b) AS f FROM 'a'",
        r#"json:{"a":"hello","b":"RED","c":"[\"hello\"]","f":"TRUE"}"#,
    ),
    (
        "SELECT substring('012345', 0) AS a, substring('012345', 2) AS b, substring('012345', 2.745) AS c, substring(123, 2) AS d, substring('012345', -1) AS e, substring(true, 1.2) AS f, substring(false, -2.411E247) AS g, substring('012345', 1, 3) AS h, substring('012345', -50, 50) AS i, substring('012345', 3, 1) AS j, substring(missing, 1) AS k, substring('abc', 'x') AS l, substring('héllo', 1, 3) AS m FROM 'a'",
        r#"json:{"a":"012345","b":"2345","c":"2345","d":"3","e":"012345","f":"rue","g":"false","h":"12","i":"012345","j":"","m":"él"}"#,
    ),
    (
        "SELECT replace('abcd', 'bc', 'x') AS a, replace('abcdabcd', 'b', 'x') AS b, replace(12321, 2, 'x') AS c, replace('a', missing, 'b') AS d FROM 'a'",
        r#"json:{"a":"axd","b":"axcdaxcd","c":"1x3x1"}"#,
    ),
    (
        "SELECT startswith('ranger', 'ran') AS a, endswith('cat', 'at') AS b, startswith(color, 'x') AS c, startswith(123, 1) AS d, endswith(missing, 'a') AS e, startswith(n, 'a') AS f FROM 'a'",
        r#"json:{"a":true,"b":true,"c":false,"d":true}"#,
    ),
    (
        "SELECT indexof('abcd', 'bc') AS a, indexof('abcd', 'z') AS b, indexof('héllo', 'l') AS c, indexof(n, 'l') AS d FROM 'a'",
        r#"json:{"a":1,"b":-1,"c":2}"#,
    ),
    (
        "SELECT length('hi') AS a, length(false) AS b, length('héllo') AS c, numbytes('€') AS d, length(missing) AS e, numbytes('hi') AS f FROM 'a'",
        r#"json:{"a":2,"b":5,"c":5,"d":3,"f":2}"#,
    ),
    (
        r"SELECT trim(str) AS a, ltrim(str) AS b, rtrim(str) AS c, trim(5) AS d, trim(n) AS e, Trim(' hi ') AS f, trim('\t hi\n') AS g, ltrim('\tx') AS h FROM 'a'",
        r#"json:{"a":"Hi There","b":"Hi There ","c":" Hi There","d":"5","f":"hi","g":"hi","h":"x"}"#,
    ),
    (
        "SELECT lpad('hello', 2) AS a, rpad('hello', 2) AS b, lpad(1, 3) AS c, lpad('x', -5) AS d, rpad('x', '2') AS e, lpad('x', true) AS f, chr(65) AS g, chr(49.9) AS h, chr('66') AS i, chr(300) AS j FROM 'a'",
        r#"json:{"a":"  hello","b":"hello  ","c":"   1","d":"x","e":"x  ","g":"A","h":"1","i":"B"}"#,
    ),
];

/// Numeric functions.
const MATH: &[(&str, &str)] = &[
    (
        "SELECT abs(-5) AS a, abs(-2.5) AS b, abs('-5.123') AS c, abs(b) AS d, abs('x') AS e FROM 'a'",
        r#"json:{"a":5,"b":2.5,"c":5.123}"#,
    ),
    (
        "SELECT Round(1.2) AS a, round(1.5) AS b, round(-1.5) AS c, round(-1.1) AS d, floor(-1.2) AS e, ceil(-1.2) AS f, ceil(1.2) AS g, floor('2.7') AS h, round(7) AS i, floor(color) AS j, round(1.7) AS k FROM 'a'",
        r#"json:{"a":1,"b":2,"c":-2,"d":-1,"e":-2,"f":-1,"g":2,"h":2,"i":7,"k":2}"#,
    ),
    (
        "SELECT sign(-7) AS a, sign(0) AS b, sign(13.5) AS c, sign('-0.5') AS d, sign(b) AS e FROM 'a'",
        r#"json:{"a":-1,"b":0,"c":1,"d":-1}"#,
    ),
    (
        "SELECT mod(8, 3) AS a, remainder(8, 3) AS b, mod(-7, 3) AS c, mod(7.5, 2) AS d, mod('9', 4) AS e, mod(1, 0) AS f, mod(b, 2) AS g FROM 'a'",
        r#"json:{"a":2,"b":2,"c":-1,"d":1.5,"e":1}"#,
    ),
    (
        "SELECT trunc(2.3, 0) AS a, trunc(2.3123, 2) AS b, trunc(2.888, 2) AS c, trunc(2.00, 5) AS d, trunc(0.29, 2) AS e, trunc(-2.789, 1) AS f, trunc(5, 2) AS g, trunc('3.14159', 3) AS h FROM 'a'",
        r#"json:{"a":2,"b":2.31,"c":2.88,"d":2,"e":0.29,"f":-2.7,"g":5,"h":3.141}"#,
    ),
    (
        "SELECT power(2, 5) AS a, sqrt(9) AS b, sqrt(-1) AS c, exp(0) AS d, ln(1) AS e, log(100) AS f, sin(0) AS g, cos(0) AS h, atan2(1, 0) AS i, acos(2) AS j, power('2', '0.5') AS k, ln(0) AS l FROM 'a'",
        r#"json:{"a":32,"b":3,"d":1,"e":0,"f":2,"g":0,"h":1,"i":1.5707963267948966,"k":1.4142135623730951}"#,
    ),
    (
        "SELECT acos(0) AS a, asin(1) AS b, atan(1) AS c, tan(1) AS d, sinh(2.3) AS e, cosh(2.3) AS f, tanh(2.3) AS g FROM 'a'",
        r#"json:{"a":1.5707963267948966,"b":1.5707963267948966,"c":0.7853981633974483,"d":1.5574077246549023,"e":4.936961805545957,"f":5.037220649268761,"g":0.9800963962661914}"#,
    ),
    (
        "SELECT bitand(13, 5) AS a, bitor(8, 5) AS b, bitxor(13, 5) AS c, bitnot(13) AS d, bitand(13.9, '5') AS e, bitor(b, 1) AS f FROM 'a'",
        r#"json:{"a":5,"b":13,"c":8,"d":-14,"e":5}"#,
    ),
    (
        "SELECT nanvl(8, 3) AS a, nanvl(missing, 3) AS b, nanvl(n, 'x') AS c FROM 'a'",
        r#"json:{"a":8,"b":3,"c":"x"}"#,
    ),
    (
        "SELECT isNull(n) AS a, isNull(5) AS b, isNull(missing) AS c, isUndefined(missing) AS d, isUndefined(n) AS e, isundefined(floor([1,2,3])) AS f FROM 'a'",
        r#"json:{"a":true,"b":false,"c":false,"d":true,"e":false,"f":true}"#,
    ),
    (
        "SELECT encode(color, 'base64') AS a, encode(arr, 'base64') AS b, encode(color, 'hex') AS c, encode(missing, 'base64') AS d FROM 'a'",
        r#"json:{"a":"cmVk","b":"WzEsMiwzXQ=="}"#,
    ),
    (
        "SELECT decode('eyAidGVtcGVyYXR1cmUiOiAzMyB9Cg==', 'base64').temperature AS temp, decode('aGVsbG8=', 'base64') AS s, decode('!!', 'base64') AS bad, decode('/w==', 'base64') AS bin, decode('aGk=', 'hex') AS other FROM 'a'",
        r#"json:{"temp":33,"s":"hello","bad":null,"bin":null}"#,
    ),
];

/// Parse errors, with positions.
const ERRORS: &[(&str, &str)] = &[
    ("", "parse:Expected SELECT but found end of input at 1:1"),
    (
        "SELECT color WHERE x = 1",
        "parse:Expected FROM but found 'WHERE' at 1:14",
    ),
    (
        "SELECT color, temp FROM",
        "parse:Expected a topic filter in single quotes but found end of input at 1:24",
    ),
    (
        "SELECT * FROM \"a/b\"",
        "parse:The topic filter after FROM must be in single quotes, not double quotes at 1:15",
    ),
    (
        "SELECT * FROM a/b",
        "parse:Expected a topic filter in single quotes but found 'a' at 1:15",
    ),
    (
        "SELECT * FROM 'a/#/b'",
        "parse:Invalid topic filter 'a/#/b': '#' must be a whole level and the last one at 1:15",
    ),
    (
        "SELECT * FROM 'a/b+'",
        "parse:Invalid topic filter 'a/b+': '+' must be a whole level at 1:15",
    ),
    (
        "SELECT * FROM ''",
        "parse:The topic filter is empty at 1:15",
    ),
    (
        "SELECT * FROM 'a' WHERE",
        "parse:Expected an expression but found end of input at 1:24",
    ),
    (
        "SELECT * FROM 'a' extra",
        "parse:Expected WHERE or end of statement but found 'extra' at 1:19",
    ),
    (
        "SELECT * FROM 'a' WHERE x = 1 y",
        "parse:Expected end of statement but found 'y' at 1:31",
    ),
    (
        "SELECT foo(1) FROM 'a'",
        "parse:Unknown function 'foo' at 1:8",
    ),
    (
        "SELECT md5(color) AS h FROM 'a'",
        "parse:Function 'md5' is not supported by this gateway at 1:8",
    ),
    (
        "SELECT a || b FROM 'a'",
        "parse:The || operator is not part of AWS IoT SQL; use concat() or + at 1:10",
    ),
    ("SELECT * FROM 'a", "parse:Unterminated string at 1:15"),
    (
        "SELECT color\nFROM 'a'\nWHERE temperature >",
        "parse:Expected an expression but found end of input at 3:20",
    ),
    (
        "SELECT cast(1) FROM 'a'",
        "parse:Expected AS but found ')' at 1:14",
    ),
    (
        "SELECT cast(1 AS Foo) AS x FROM 'a'",
        "parse:Unknown type 'Foo' in cast; expected String, Int, Decimal, Double or Boolean at 1:18",
    ),
    (
        "SELECT CASE color END FROM 'a'",
        "parse:Expected WHEN but found 'END' at 1:19",
    ),
    (
        "SELECT CASE WHEN a THEN 1 FROM 'a'",
        "parse:Expected END but found 'FROM' at 1:27",
    ),
    (
        "SELECT VALUE color AS c FROM 'a'",
        "parse:SELECT VALUE takes an expression without AS at 1:20",
    ),
    (
        "SELECT VALUE color, t FROM 'a'",
        "parse:SELECT VALUE takes exactly one expression at 1:19",
    ),
    (
        "SELECT a.1 FROM 'a'",
        "parse:Expected a field name after '.' (use get() for names that are not plain words) but found number 1 at 1:10",
    ),
    (
        "SELECT FROM 'a'",
        "parse:Expected an expression but found 'FROM' at 1:8",
    ),
    (
        "SELECT a AS FROM 'a'",
        "parse:Expected FROM but found string 'a' at 1:18",
    ),
    (
        "SELECT a AS 1 FROM 'a'",
        "parse:Expected a name after AS but found number 1 at 1:13",
    ),
    (
        "SELECT [1, 2 FROM 'a'",
        "parse:Expected ',' or ']' but found 'FROM' at 1:14",
    ),
    (
        "SELECT {'a' 1} FROM 'a'",
        "parse:Expected ':' but found number 1 at 1:13",
    ),
    (
        "SELECT (1 + 2 FROM 'a'",
        "parse:Expected ')' but found 'FROM' at 1:15",
    ),
    (
        "SELECT a IS 5 FROM 'a'",
        "parse:Expected NULL or UNDEFINED after IS but found number 5 at 1:13",
    ),
    (
        "SELECT 'a\\x' FROM 'a'",
        "parse:Invalid escape '\\x' in string at 1:10",
    ),
    (
        "SELECT 12ab FROM 'a'",
        "parse:Invalid number '12...' at 1:8",
    ),
    (
        "SELECT a # b FROM 'a'",
        "parse:Unexpected character '#' at 1:10",
    ),
];

/// What SQL 2015-10-08 does differently.
const VERSION_1: &[(&str, &str)] = &[
    (
        "SELECT 10.0 AS w, w AS pw, 7.0 / 2 AS h, t * 2 AS b, sqrt(9) AS r, power(2, 5) AS p, cast(2 AS Double) AS j, sql_version() AS v FROM 'a'",
        r#"json:{"w":10.0,"pw":10.0,"h":3.5,"b":45.0,"r":3.0,"p":32.0,"j":2.0,"v":"2015-10-08"}"#,
    ),
    (
        "SELECT tan(0) AS a, asin(0) AS b, atan(0) AS c, sinh(0) AS d, cosh(0) AS e, tanh(0) AS f, s - 2 AS g FROM 'a'",
        r#"json:{"a":0.0,"b":0.0,"c":0.0,"d":0.0,"e":1.0,"f":0.0,"g":10.0}"#,
    ),
    ("SELECT VALUE color FROM 'a'", r#"json:"red""#),
    (
        "SELECT VALUE arr FROM 'a'",
        "eval:SQL version 2015-10-08 cannot output an array at the top level; use 2016-03-23",
    ),
    (
        "SELECT encode(color, 'base64') AS e FROM 'a'",
        "parse:Function 'encode' requires SQL version 2016-03-23 at 1:8",
    ),
    (
        "SELECT isUndefined(x) FROM 'a'",
        "parse:Function 'isUndefined' requires SQL version 2016-03-23 at 1:8",
    ),
    (
        "SELECT cast(1 AS Decimal) AS d FROM 'a'",
        "parse:cast to Decimal requires SQL version 2016-03-23 at 1:18",
    ),
    (
        "SELECT [1] AS a FROM 'a'",
        "parse:Array literals require SQL version 2016-03-23 at 1:8",
    ),
    (
        "SELECT {'a': 1} AS a FROM 'a'",
        "parse:Object literals require SQL version 2016-03-23 at 1:8",
    ),
    (
        "SELECT (SELECT VALUE n FROM e) AS s FROM 'a'",
        "parse:Nested queries require SQL version 2016-03-23 at 1:9",
    ),
];

#[test]
fn select_and_where() {
    check(SELECT, V2, &message(TOPIC, PAYLOAD.as_bytes()));
}

#[test]
fn literals() {
    check(LITERALS, V2, &message(TOPIC, PAYLOAD.as_bytes()));
}

#[test]
fn arithmetic() {
    check(ARITHMETIC, V2, &message(TOPIC, PAYLOAD.as_bytes()));
}

#[test]
fn comparison_and_logic() {
    check(COMPARISON, V2, &message(TOPIC, PAYLOAD.as_bytes()));
}

#[test]
fn case() {
    check(CASE, V2, &message(TOPIC, PAYLOAD.as_bytes()));
}

#[test]
fn nested_queries() {
    check(NESTED, V2, &message(TOPIC, PAYLOAD.as_bytes()));
}

#[test]
fn functions() {
    check(FUNCTIONS, V2, &message(TOPIC, PAYLOAD.as_bytes()));
}

#[test]
fn math_and_encoding() {
    check(MATH, V2, &message(TOPIC, PAYLOAD.as_bytes()));
}

#[test]
fn parse_errors() {
    check(ERRORS, V2, &message(TOPIC, PAYLOAD.as_bytes()));
}

#[test]
fn sql_version_2015_10_08() {
    check(VERSION_1, V1, &message(TOPIC, PAYLOAD.as_bytes()));
}

#[test]
fn beta_is_2016_03_23() {
    let msg = message(TOPIC, PAYLOAD.as_bytes());
    check(
        &[
            (
                "SELECT VALUE [w, sql_version()] FROM 'a'",
                r#"json:[10,"beta"]"#,
            ),
            (
                "SELECT encode('a', 'base64') AS e FROM 'a'",
                r#"json:{"e":"YQ=="}"#,
            ),
        ],
        SqlVersion::Beta,
        &msg,
    );
}

#[test]
fn select_star_passes_the_payload_through() {
    let small = br#"{"color":"red","temperature":50}"#;
    let msg = message(TOPIC, small);
    check(
        &[
            (
                "SELECT * FROM 'things/+/telemetry'",
                r#"json:{"color":"red","temperature":50}"#,
            ),
            (
                "SELECT *, 15 AS speed FROM 'a'",
                r#"json:{"color":"red","temperature":50,"speed":15}"#,
            ),
            (
                "SELECT *, 'x' AS color FROM 'a'",
                r#"json:{"color":"x","temperature":50}"#,
            ),
            (
                "SELECT 1 AS a, * FROM 'a'",
                r#"json:{"a":1,"color":"red","temperature":50}"#,
            ),
            (
                "SELECT *, timestamp() AS timestamp FROM 'a' WHERE temperature = 50",
                r#"json:{"color":"red","temperature":50,"timestamp":1700000000000}"#,
            ),
            (
                "SELECT * AS all FROM 'a'",
                r#"json:{"all":{"color":"red","temperature":50}}"#,
            ),
            (
                "SELECT encode(*, 'base64') AS b FROM 'a'",
                r#"json:{"b":"eyJjb2xvciI6InJlZCIsInRlbXBlcmF0dXJlIjo1MH0="}"#,
            ),
        ],
        V2,
        &msg,
    );
    // Whitespace, key order and `10.0` are kept byte for byte.
    let odd = b" {\"z\": 10.0,  \"a\":[ ]}\n";
    check(
        &[("SELECT * FROM 'a'", "json: {\"z\": 10.0,  \"a\":[ ]}\n")],
        V2,
        &message(TOPIC, odd),
    );
}

#[test]
fn binary_payloads() {
    let bin: &[u8] = b"\x00\x01\xffbinary";
    let msg = message(TOPIC, bin);
    let stmt =
        ferrule_sql::Statement::parse("SELECT * FROM 'a'", V2).unwrap_or_else(|e| panic!("{e}"));
    let out = stmt
        .evaluate(&msg, &mut common::TestEnv::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("rejected"));
    assert_eq!(out, ferrule_sql::Output::Raw(bin.to_vec()));
    assert!(!out.is_json());
    assert_eq!(out.as_bytes(), bin);
    check(
        &[
            (
                "SELECT * FROM 'a' WHERE timestamp() % 12 = 8",
                "raw:\u{0}\u{1}\u{fffd}binary",
            ),
            ("SELECT * FROM 'a' WHERE device_type = 'thermostat'", "none"),
            (
                "SELECT encode(*, 'base64') AS data, timestamp() AS ts FROM 'a'",
                r#"json:{"data":"AAH/YmluYXJ5","ts":1700000000000}"#,
            ),
            ("SELECT *, 1 AS x FROM 'a'", r#"json:{"x":1}"#),
            (
                "SELECT device_type AS d, topic(3) AS t FROM 'a'",
                r#"json:{"t":"telemetry"}"#,
            ),
            (
                "SELECT VALUE encode(*, 'base64') FROM 'a'",
                r#"json:"AAH/YmluYXJ5""#,
            ),
        ],
        V2,
        &msg,
    );
    // AWS's example: a payload that is a bare number is JSON, and decode(encode(*)) reads it.
    check(
        &[(
            "SELECT decode(encode(*, 'base64'), 'base64') AS value FROM 'a' WHERE decode(encode(*, 'base64'), 'base64') > 50",
            r#"json:{"value":80}"#,
        )],
        V2,
        &message(TOPIC, b"80"),
    );
}

#[test]
fn messages_without_mqtt_facts() {
    let msg = Message::new(
        "$aws/rules/BuildingManager/Buildings/Building5/Floor2/Room201/Lights",
        b"{}",
        5,
    );
    check(
        &[(
            "SELECT topic() AS t, topic(3) AS f, clientid() AS c, principal() AS p, traceid() AS tr, accountid() AS a, timestamp() AS ts FROM 'a'",
            r#"json:{"t":"Buildings/Building5/Floor2/Room201/Lights","f":"Floor2","c":"n/a","a":"","ts":5}"#,
        )],
        V2,
        &msg,
    );
}

#[test]
fn statement_facts() {
    let s = ferrule_sql::Statement::parse(
        "SELECT * FROM '$aws/events/certificates/registered/abc' WHERE x = 1",
        V1,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.topic_filter(), "$aws/events/certificates/registered/abc");
    assert!(s.is_select_star());
    assert_eq!(s.version(), V1);
    for sql in [
        "SELECT *, 1 AS a FROM 'x'",
        "SELECT a FROM 'x'",
        "SELECT VALUE a FROM 'x'",
    ] {
        let s = ferrule_sql::Statement::parse(sql, V2).unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.is_select_star(), "{sql}");
    }
    assert_eq!("2016-03-23".parse::<SqlVersion>(), Ok(V2));
    assert_eq!("beta".parse::<SqlVersion>(), Ok(SqlVersion::Beta));
    assert!("2017-01-01".parse::<SqlVersion>().is_err());
    assert_eq!(SqlVersion::default(), V2);
}

#[test]
fn canonical_text() {
    let cases = [
        (
            "select a + b * c as x, (a + b) * c AS y, a - (b - c) AS z, (a - b) - c AS w from 'a/+' where not a = 1 or b",
            "SELECT a + b * c AS x, (a + b) * c AS y, a - (b - c) AS z, a - b - c AS w FROM 'a/+' WHERE NOT a = 1 OR b",
        ),
        (
            "SELECT NOT (a AND b) AS n, (NOT a) AND b AS m, -(a + 1) AS o, - -a AS p, a = (b IS NULL) AS q, (a = b) IS NULL AS r, -(-5).x AS s FROM 'a'",
            "SELECT NOT (a AND b) AS n, NOT a AND b AS m, -(a + 1) AS o, --a AS p, a = (b IS NULL) AS q, a = b IS NULL AS r, -(-5).x AS s FROM 'a'",
        ),
        (
            "SELECT VALUE (-x.y[0]) FROM 'a'",
            "SELECT VALUE (-x.y[0]) FROM 'a'",
        ),
        // After SELECT, `value` followed by an operator is a field named "value".
        ("SELECT value -x FROM 'a'", "SELECT value - x FROM 'a'"),
        ("SELECT VALUE (in) FROM 'a'", "SELECT VALUE (in) FROM 'a'"),
        ("SELECT VALUE (*) FROM 'a'", "SELECT VALUE (*) FROM 'a'"),
        (
            "SELECT *, CASE a WHEN 1 THEN 'x' END AS c, cast(a AS integer) AS d FROM 'it''s'",
            "SELECT *, CASE a WHEN 1 THEN 'x' END AS c, cast(a AS Int) AS d FROM 'it\\'s'",
        ),
        (
            "SELECT (value)[0] AS v, a AS 'b-c', (SELECT VALUE n FROM e WHERE n IS NOT NULL) AS s FROM '#'",
            "SELECT (value)[0] AS v, a AS 'b-c', (SELECT VALUE n FROM e WHERE n IS NOT NULL) AS s FROM '#'",
        ),
    ];
    for (sql, want) in cases {
        let s = ferrule_sql::Statement::parse(sql, V2).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(s.to_string(), want);
        let again = ferrule_sql::Statement::parse(&s.to_string(), V2)
            .unwrap_or_else(|e| panic!("{want}: {e}"));
        assert_eq!(again, s);
    }
}

#[test]
fn nesting_is_bounded_and_deep_trees_evaluate() {
    let deep = format!(
        "SELECT {}1{} AS x FROM 'a'",
        "(".repeat(100),
        ")".repeat(100)
    );
    let e = ferrule_sql::Statement::parse(&deep, V2).err();
    assert!(
        e.as_ref().is_some_and(|e| e.message.contains("nested")),
        "{e:?}"
    );
    let long_chain = format!("SELECT 1{} AS x FROM 'a'", " + 1".repeat(10_000));
    assert!(ferrule_sql::Statement::parse(&long_chain, V2).is_err());
    // Deep statements within the bound parse and evaluate.
    let ok = format!("SELECT {}1{} AS x FROM 'a'", "(".repeat(40), ")".repeat(40));
    assert_eq!(outcome(&ok, V2, &message(TOPIC, b"{}")), r#"json:{"x":1}"#);
    let chain = format!("SELECT 0{} AS x FROM 'a'", " + 1".repeat(40));
    assert_eq!(
        outcome(&chain, V2, &message(TOPIC, b"{}")),
        r#"json:{"x":40}"#
    );
}

/// The deepest form of each kind that parses, as `(prefix, middle, suffix)` repeated.
fn deepest(prefix: &str, middle: &str, suffix: &str) -> String {
    (1..200)
        .rev()
        .map(|n| {
            format!(
                "SELECT {}{middle}{} AS x FROM 'a'",
                prefix.repeat(n),
                suffix.repeat(n)
            )
        })
        .find(|sql| ferrule_sql::Statement::parse(sql, V2).is_ok())
        .unwrap_or_else(|| panic!("no depth of {prefix} parses"))
}

#[test]
fn the_deepest_accepted_forms_run_on_half_a_tokio_stack() {
    let forms = [
        deepest("(", "1", ")"),
        deepest("abs(", "1", ")"),
        deepest("[", "1", "]"),
        deepest("{'k': ", "1", "}"),
        deepest("CASE WHEN true THEN ", "1", " END"),
        deepest("CASE 1 WHEN 1 THEN ", "1", " END"),
        deepest("(SELECT VALUE ", "o", " FROM o)"),
        deepest("NOT ", "x", ""),
        deepest("-", "x", ""),
        deepest("", "x", ".y"),
        deepest("", "a", "[0]"),
        deepest("", "0", " + 1"),
        deepest("cast(", "1", " AS Int)"),
        deepest("get(", "o", ", 'k')"),
    ];
    for sql in forms {
        // Tokio's worker threads have 2 MiB; this holds in a debug build with half of that.
        std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(move || {
                let stmt = ferrule_sql::Statement::parse(&sql, V2)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                let text = stmt.to_string();
                let again = ferrule_sql::Statement::parse(&text, V2)
                    .unwrap_or_else(|e| panic!("{text}: {e}"));
                assert_eq!(again, stmt);
                let msg = message(TOPIC, br#"{"o":{"k":1}}"#);
                stmt.evaluate(&msg, &mut common::TestEnv::default())
                    .unwrap_or_else(|e| panic!("{e}"));
            })
            .unwrap_or_else(|e| panic!("{e}"))
            .join()
            .unwrap_or_else(|_| panic!("a deep statement panicked"));
    }
}

#[test]
fn evaluation_is_bounded_when_values_multiply() {
    let long = "x".repeat(100_000);
    let payload = format!(
        r#"{{"s":"{long}","e":"","o":{{"s":"{long}"}},"arr":[{}]}}"#,
        vec!["{}"; 3000].join(",")
    );
    let msg = message(TOPIC, payload.as_bytes());
    check(
        &[
            // 100 001 insertions of 100 000 bytes: refused before it is built.
            (
                "SELECT replace(s, e, s) AS r FROM 'a'",
                "eval:the statement produces too much data for this message",
            ),
            (
                "SELECT 1 AS x FROM 'a' WHERE length(replace(s, e, s)) > 0",
                "eval:the statement produces too much data for this message",
            ),
            // 3000 copies of a 100 000-byte object.
            (
                "SELECT VALUE transform('enrichArray', o, arr) FROM 'a'",
                "eval:the statement produces too much data for this message",
            ),
            // Within bounds, the same shapes work.
            (
                "SELECT length(replace(s, 'x', 'yy')) AS n, length(get(transform('enrichArray', {'k': 1}, arr), 2999)) AS m FROM 'a'",
                r#"json:{"n":200000,"m":7}"#,
            ),
        ],
        V2,
        &msg,
    );
    // Templates give Undefined (nothing) instead.
    let rendered = ferrule_sql::render_template(
        "[${replace(s, e, s)}]",
        &msg,
        &mut common::TestEnv::default(),
    );
    assert_eq!(rendered, Ok("[]".to_owned()));
}
