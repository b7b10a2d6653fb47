//! The operations, and the router that maps botocore's method + path onto them.
//!
//! Paths and methods are copied from botocore's `iot` model (`requestUri`, `http.method`), and
//! from its `lambda` model for the `/2015-03-31/` routes ([`lambda`]).
//! `POST /` is where the services on other protocols arrive (CloudWatch Logs' JSON 1.1 by
//! `X-Amz-Target`; IAM's query protocol by a form body with `Action=`); [`post_root`] sorts
//! them out.
//! Path labels are matched on the raw path, so a label may hold `%2F` (the target ARN of
//! `ListAttachedPolicies`); the extractor percent-decodes it afterwards.

mod cas;
mod certs;
mod iam;
mod lambda;
mod logs;
mod misc;
mod policies;
mod rules;
mod test_authorization;
mod things;

use std::str::FromStr;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use ferrule_store::PageRequest;
use serde_json::Value;

use crate::ApiState;
use crate::auth::RequestId;
use crate::error::ApiError;
use crate::extract::Call;

/// What every handler returns: a JSON body or an AWS error.
type Reply = Result<Json<Value>, ApiError>;

/// Page size when the caller gives none: AWS's maximum, so callers that do not paginate see
/// everything a small registry holds.
const DEFAULT_PAGE_SIZE: i64 = 250;
/// The largest `pageSize`/`maxResults` AWS accepts for these lists.
const MAX_PAGE_SIZE: i64 = 250;

/// The AWS IoT control plane as an axum router, every operation behind SigV4. Unknown routes
/// get a 404 `UnknownOperationException` botocore can parse, signed or not.
pub fn router(state: ApiState) -> Router {
    Router::new()
        // Registration code and CA certificates.
        .route(
            "/registrationcode",
            get(cas::get_registration_code).delete(cas::delete_registration_code),
        )
        .route("/cacertificate", post(cas::register_ca_certificate))
        .route(
            "/cacertificate/{caCertificateId}",
            get(cas::describe_ca_certificate)
                .put(cas::update_ca_certificate)
                .delete(cas::delete_ca_certificate),
        )
        .route("/cacertificates", get(cas::list_ca_certificates))
        // Device certificates.
        .route("/certificate/register", post(certs::register_certificate))
        .route(
            "/certificate/register-no-ca",
            post(certs::register_certificate_without_ca),
        )
        .route(
            "/certificates",
            get(certs::list_certificates).post(certs::create_certificate_from_csr),
        )
        .route(
            "/certificates/{certificateId}",
            get(certs::describe_certificate)
                .put(certs::update_certificate)
                .delete(certs::delete_certificate),
        )
        .route(
            "/certificates-by-ca/{caCertificateId}",
            get(certs::list_certificates_by_ca),
        )
        .route(
            "/keys-and-certificate",
            post(certs::create_keys_and_certificate),
        )
        // Policies.
        .route("/policies", get(policies::list_policies))
        .route(
            "/policies/{policyName}",
            post(policies::create_policy)
                .get(policies::get_policy)
                .delete(policies::delete_policy),
        )
        .route(
            "/policies/{policyName}/version",
            post(policies::create_policy_version).get(policies::list_policy_versions),
        )
        .route(
            "/policies/{policyName}/version/{policyVersionId}",
            get(policies::get_policy_version)
                .patch(policies::set_default_policy_version)
                .delete(policies::delete_policy_version),
        )
        .route(
            "/target-policies/{policyName}",
            put(policies::attach_policy).post(policies::detach_policy),
        )
        .route(
            "/principal-policies/{policyName}",
            put(policies::attach_principal_policy).delete(policies::detach_principal_policy),
        )
        .route(
            "/principal-policies",
            get(policies::list_principal_policies),
        )
        .route(
            "/attached-policies/{target}",
            post(policies::list_attached_policies),
        )
        .route(
            "/policy-targets/{policyName}",
            post(policies::list_targets_for_policy),
        )
        .route("/policy-principals", get(policies::list_policy_principals))
        .route(
            "/test-authorization",
            post(test_authorization::test_authorization),
        )
        // Things.
        .route("/things", get(things::list_things))
        .route(
            "/things/{thingName}",
            post(things::create_thing)
                .get(things::describe_thing)
                .patch(things::update_thing)
                .delete(things::delete_thing),
        )
        .route(
            "/things/{thingName}/principals",
            put(things::attach_thing_principal)
                .delete(things::detach_thing_principal)
                .get(things::list_thing_principals),
        )
        .route("/principals/things", get(things::list_principal_things))
        // Topic rules.
        .route("/rules", get(rules::list_topic_rules))
        .route(
            "/rules/{ruleName}",
            post(rules::create_topic_rule)
                .get(rules::get_topic_rule)
                .patch(rules::replace_topic_rule)
                .delete(rules::delete_topic_rule),
        )
        .route("/rules/{ruleName}/enable", post(rules::enable_topic_rule))
        .route("/rules/{ruleName}/disable", post(rules::disable_topic_rule))
        // Endpoint and tags.
        .route("/endpoint", get(misc::describe_endpoint))
        .route(
            "/tags",
            get(misc::list_tags_for_resource).post(misc::tag_resource),
        )
        .route("/untag", post(misc::untag_resource))
        // Lambda (rest-json, botocore's `lambda` 2015-03-31 model).
        .route(
            "/2015-03-31/functions",
            post(lambda::create_function).get(lambda::list_functions),
        )
        .route("/2015-03-31/functions/", get(lambda::list_functions))
        .route(
            "/2015-03-31/functions/{FunctionName}",
            get(lambda::get_function).delete(lambda::delete_function),
        )
        .route(
            "/2015-03-31/functions/{FunctionName}/configuration",
            get(lambda::get_function_configuration).put(lambda::update_function_configuration),
        )
        .route(
            "/2015-03-31/functions/{FunctionName}/code",
            put(lambda::update_function_code),
        )
        .route(
            "/2015-03-31/functions/{FunctionName}/code-zip",
            get(lambda::get_function_code),
        )
        .route(
            "/2015-03-31/functions/{FunctionName}/invocations",
            post(lambda::invoke),
        )
        .route(
            "/2015-03-31/functions/{FunctionName}/policy",
            post(lambda::add_permission).get(lambda::get_policy),
        )
        .route(
            "/2015-03-31/functions/{FunctionName}/policy/{StatementId}",
            delete(lambda::remove_permission),
        )
        // JSON 1.1 (CloudWatch Logs) and query (IAM) services.
        .route("/", post(post_root))
        .fallback(unknown_operation)
        .method_not_allowed_fallback(unknown_operation)
        // Only requests that match an operation need a signature: an unknown path is a plain
        // 404, whoever asks.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate,
        ))
        .layer(middleware::from_fn(crate::auth::stamp_request_id))
        .with_state(state)
}

/// Whether a request is on IAM's query protocol: `POST /` with a form body.
pub(crate) fn is_query_request(method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
    method == Method::POST
        && uri.path() == "/"
        && headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            })
}

/// `POST /`: an IAM operation when the body is a form (`Action=...`), a CloudWatch Logs
/// operation when `X-Amz-Target` names one, otherwise the unknown-operation error every
/// other unmatched request gets.
async fn post_root(
    State(st): State<ApiState>,
    request_id: Option<axum::Extension<RequestId>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if is_query_request(&Method::POST, &Uri::from_static("/"), &headers) {
        let request_id = request_id.map(|r| r.0.0).unwrap_or_default();
        return iam::handle(&st, &body, request_id).await;
    }
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match target.strip_prefix(logs::TARGET_PREFIX) {
        Some(op) => logs::handle(&st, op, &body).await,
        None => unknown_operation(Method::POST, Uri::from_static("/"))
            .await
            .into_response(),
    }
}

async fn unknown_operation(method: Method, uri: Uri) -> ApiError {
    ApiError::UnknownOperation {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

/// A JSON reply with `null` members removed: AWS leaves absent members out.
fn reply(mut value: Value) -> Reply {
    strip_nulls(&mut value);
    Ok(Json(value))
}

/// The empty reply of operations without output members.
fn empty() -> Reply {
    Ok(Json(Value::Object(serde_json::Map::new())))
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Epoch seconds, as botocore's rest-json parser reads timestamps.
fn secs(ms: i64) -> Value {
    if ms % 1000 == 0 {
        Value::from(ms / 1000)
    } else {
        Value::from(ms as f64 / 1000.0)
    }
}

/// `?marker=&pageSize=&isAscendingOrder=`: certificates, CAs and policies.
fn marker_page(call: &Call) -> Result<PageRequest, ApiError> {
    page(
        call,
        "marker",
        "pageSize",
        call.query_bool("isAscendingOrder")?.unwrap_or(true),
    )
}

/// `?nextToken=&maxResults=`: things and principals.
fn token_page(call: &Call) -> Result<PageRequest, ApiError> {
    page(call, "nextToken", "maxResults", true)
}

fn page(call: &Call, marker: &str, size: &str, ascending: bool) -> Result<PageRequest, ApiError> {
    let page_size = call
        .query_int(size, 1, MAX_PAGE_SIZE)?
        .unwrap_or(DEFAULT_PAGE_SIZE);
    Ok(PageRequest {
        marker: call
            .query(marker)
            .filter(|m| !m.is_empty())
            .map(str::to_owned),
        page_size: usize::try_from(page_size).unwrap_or(1),
        ascending,
    })
}

/// A certificate id from a path label: 64 hex digits, normalised to lowercase.
fn certificate_id(call: &Call, label: &str) -> Result<String, ApiError> {
    let raw = call.label(label)?;
    ferrule_pki::CertificateId::from_str(raw)
        .map(ferrule_pki::CertificateId::into_string)
        .map_err(|e| ApiError::InvalidRequest(format!("{label}: {e}")))
}

/// Checks a name against AWS's model: length and allowed characters.
fn check_name(
    member: &str,
    value: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
    pattern: &str,
) -> Result<(), ApiError> {
    if value.is_empty() || value.chars().count() > max || !value.chars().all(allowed) {
        return Err(ApiError::InvalidRequest(format!(
            "{member} {value:?} is not valid: it must be 1 to {max} characters matching {pattern}"
        )));
    }
    Ok(())
}

/// A resource tag, as the model spells it (`Key`, `Value`).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
struct Tag {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Value", default)]
    value: String,
}

fn tag_pairs(tags: &[Tag]) -> Result<Vec<(String, String)>, ApiError> {
    tags.iter()
        .map(|t| {
            if t.key.is_empty() || t.key.chars().count() > 128 || t.key.starts_with("aws:") {
                return Err(ApiError::InvalidRequest(format!(
                    "tag key {:?} is not valid: 1 to 128 characters, not starting with \"aws:\"",
                    t.key
                )));
            }
            if t.value.chars().count() > 256 {
                return Err(ApiError::InvalidRequest(format!(
                    "the value of tag {:?} is longer than 256 characters",
                    t.key
                )));
            }
            Ok((t.key.clone(), t.value.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_access;
#[cfg(test)]
mod tests_iam;
#[cfg(test)]
mod tests_lambda;
#[cfg(test)]
mod tests_logs;
#[cfg(test)]
mod tests_rules;
