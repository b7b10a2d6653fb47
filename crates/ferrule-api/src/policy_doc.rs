//! Policy document validation for CreatePolicy/CreatePolicyVersion: a malformed document is
//! refused with `MalformedPolicyException` naming the problem.
//!
//! The grammar is `ferrule-policy`'s, the parser the broker evaluates with, so every document
//! the API accepts is one the broker can enforce. The API adds one rule of its own: `Version`
//! must be given (AWS's examples and tools always give it; without it the 2008 language,
//! which has no policy variables, would apply silently).

use serde_json::Value;

/// Checks a policy document; the error is the message for `MalformedPolicyException`.
pub(crate) fn validate(document: &str) -> Result<(), String> {
    ferrule_policy::Policy::parse(document).map_err(|e| e.to_string())?;
    // Parsed, so it is a JSON object.
    let has_version =
        serde_json::from_str::<Value>(document).is_ok_and(|v| v.get("Version").is_some());
    if !has_version {
        return Err("the policy document has no Version; use \"Version\": \"2012-10-17\"".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(statement: &str) -> String {
        format!(r#"{{"Version":"2012-10-17","Statement":{statement}}}"#)
    }

    #[test]
    fn good_documents_pass() {
        let ok = [
            doc(r#"{"Effect":"Allow","Action":"iot:*","Resource":"*"}"#),
            doc(
                r#"[{"Sid":"a","Effect":"Deny","Action":["iot:Connect","iot:Publish"],"Resource":["arn:aws:iot:us-east-1:1:client/x"]}]"#,
            ),
            doc(
                r#"[{"Effect":"Allow","Action":"iot:Get*","Resource":"*","Condition":{"Bool":{"iot:Connection.Thing.IsAttached":"true"}}}]"#,
            ),
            r#"{"Version":"2008-10-17","Id":"x","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#
                .to_owned(),
        ];
        for d in ok {
            assert_eq!(validate(&d), Ok(()), "{d}");
        }
    }

    #[test]
    fn malformed_documents_name_the_problem() {
        let cases = [
            ("not json", "not valid JSON"),
            ("[]", "must be a JSON object"),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}"#,
                "no Version",
            ),
            (r#"{"Version":"2020-01-01","Statement":[]}"#, "Version"),
            (r#"{"Version":"2012-10-17"}"#, "Statement"),
            (&doc("[]"), "Statement is empty"),
            (
                &doc(r#"{"Effect":"Allow","Action":"iot:*","Resource":"*"},"x":1"#),
                "\"x\"",
            ),
            (
                &doc(r#"{"Effect":"Maybe","Action":"iot:*","Resource":"*"}"#),
                "Statement[0].Effect",
            ),
            (
                &doc(r#"{"Action":"iot:*","Resource":"*"}"#),
                "Effect is missing",
            ),
            (&doc(r#"[{"Effect":"Allow","Resource":"*"}]"#), "no Action"),
            (
                &doc(r#"[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]"#),
                "iot: actions",
            ),
            (
                &doc(r#"[{"Effect":"Allow","Action":[],"Resource":"*"}]"#),
                "Action",
            ),
            (
                &doc(r#"[{"Effect":"Allow","Action":"iot:*"}]"#),
                "no Resource",
            ),
            (
                &doc(r#"[{"Effect":"Allow","Action":"iot:*","Resource":"topic/x"}]"#),
                "not \"*\" or an ARN",
            ),
            (
                &doc(r#"[{"Effect":"Allow","Action":"iot:*","Resource":"*","Extra":1}]"#),
                "Extra",
            ),
        ];
        for (d, expected) in cases {
            let err = validate(d).expect_err(d);
            assert!(err.contains(expected), "{d}: {err}");
        }
    }

    #[test]
    fn size_limit_ignores_whitespace() {
        let resources: Vec<String> = (0..60)
            .map(|i| format!("\"arn:aws:iot:us-east-1:1:topic/{i:04}\""))
            .collect();
        let big = doc(&format!(
            r#"{{"Effect":"Allow","Action":"iot:*","Resource":[{}]}}"#,
            resources.join(",")
        ));
        assert!(
            validate(&big)
                .expect_err("too big")
                .contains("maximum is 2048")
        );
        let spaced = doc(r#"{"Effect":"Allow","Action":"iot:*","Resource":"*"}"#)
            .replace(',', &format!(",{}", " ".repeat(3000)));
        assert_eq!(validate(&spaced), Ok(()));
    }
}
