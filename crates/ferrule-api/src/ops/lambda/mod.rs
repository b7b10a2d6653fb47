//! The AWS Lambda API subset (`aws lambda`, rest-json, botocore's `lambda` 2015-03-31 model):
//! functions with zip code (`CreateFunction`, `GetFunction`, `GetFunctionConfiguration`,
//! `ListFunctions`, `UpdateFunctionCode`, `UpdateFunctionConfiguration`, `DeleteFunction`),
//! their resource policies (`AddPermission`, `GetPolicy`, `RemovePermission`) and `Invoke`
//! through the [`FunctionHost`](crate::functions::FunctionHost) the binary supplies.
//!
//! Ferrule keeps one version per function, `$LATEST`: there are no published versions,
//! aliases, layers, images or S3 code locations, and asking for them is an
//! `InvalidParameterValueException` that says so. Functions are always `Active` and their
//! updates `Successful` as soon as the call returns, so `aws lambda wait` never waits.
//!
//! Order of work in a handler: resolve the function name ([`names`]), check the input
//! ([`validate`]), then the registry; errors are [`LambdaError`]s, written in Lambda's own
//! error shape.

mod error;
mod invoke;
mod names;
mod policy;
mod validate;

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferrule_store::{FunctionRecord, PageRequest};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

pub(super) use invoke::invoke;
pub(super) use policy::{add_permission, get_policy, remove_permission};

use self::error::LambdaError;
use self::names::{LATEST, function_arn};
use self::validate::{MEMORY, TIMEOUT};
use super::{Tag, strip_nulls, tag_pairs};
use crate::ApiState;
use crate::error::ApiError;
use crate::extract::Call;

/// What the Lambda handlers return.
type LambdaReply = Result<Response, LambdaError>;

/// `ListFunctions` page size when `MaxItems` is not given, and its maximum.
const DEFAULT_MAX_ITEMS: i64 = 50;
const MAX_MAX_ITEMS: i64 = 10_000;

/// The request, or the reason it could not be read, in Lambda's terms.
fn call(call: Result<Call, ApiError>) -> Result<Call, LambdaError> {
    call.map_err(LambdaError::from)
}

/// The JSON body as `T`; a body that does not parse is `InvalidRequestContentException`.
fn body<T: DeserializeOwned>(call: &Call) -> Result<T, LambdaError> {
    call.json().map_err(|e| {
        LambdaError::InvalidRequestContent(format!("Could not parse request body into json: {e}"))
    })
}

/// The function a `{FunctionName}` label and `?Qualifier=` name.
fn function_name(st: &ApiState, call: &Call) -> Result<String, LambdaError> {
    names::resolve(st, call.label("FunctionName")?, call.query("Qualifier"))
}

/// The stored function, or `ResourceNotFoundException`.
async fn load(st: &ApiState, name: &str) -> Result<FunctionRecord, LambdaError> {
    let arn = function_arn(st, name);
    st.registry()
        .get_function(name)
        .await
        .map_err(|e| LambdaError::from_registry(e, &arn))?
        .ok_or_else(|| LambdaError::function_not_found(&arn))
}

/// Checks `RevisionId` when the caller gave one.
fn check_revision(f: &FunctionRecord, expected: Option<&str>) -> Result<(), LambdaError> {
    match expected {
        Some(r) if r != f.revision_id => Err(LambdaError::PreconditionFailed(
            "The Revision Id provided does not match the latest Revision Id. Call the \
             GetFunction/GetAlias API to retrieve the latest Revision Id"
                .to_owned(),
        )),
        _ => Ok(()),
    }
}

/// A JSON reply with `status`, `null` members left out.
fn json_reply(status: StatusCode, mut value: Value) -> LambdaReply {
    strip_nulls(&mut value);
    Ok((status, Json(value)).into_response())
}

/// `LastModified` as Lambda writes it: `2026-11-29T10:00:00.000+0000`.
fn last_modified(ms: i64) -> String {
    // `YYYYMMDDTHHMMSSZ`
    let compact = crate::sigv4::format_amz_date(ms.div_euclid(1000));
    let part = |r: std::ops::Range<usize>| compact.get(r).unwrap_or("00");
    format!(
        "{}-{}-{}T{}:{}:{}.{:03}+0000",
        part(0..4),
        part(4..6),
        part(6..8),
        part(9..11),
        part(11..13),
        part(13..15),
        ms.rem_euclid(1000)
    )
}

/// botocore's `FunctionConfiguration` for a stored function.
fn configuration(st: &ApiState, f: &FunctionRecord) -> Value {
    let environment = (!f.environment.is_empty()).then(|| json!({ "Variables": f.environment }));
    json!({
        "FunctionName": f.name,
        "FunctionArn": function_arn(st, &f.name),
        "Runtime": f.runtime,
        "Role": f.role,
        "Handler": (!f.handler.is_empty()).then_some(&f.handler),
        "CodeSize": f.code_size,
        "Description": f.description,
        "Timeout": f.timeout_s,
        "MemorySize": f.memory_mb,
        "LastModified": last_modified(f.last_modified_ms),
        "CodeSha256": f.code_sha256,
        "Version": LATEST,
        "Environment": environment,
        "TracingConfig": { "Mode": "PassThrough" },
        "RevisionId": f.revision_id,
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": ["x86_64"],
        "EphemeralStorage": { "Size": 512 },
        "SnapStart": { "ApplyOn": "None", "OptimizationStatus": "Off" },
        "LoggingConfig": { "LogFormat": "Text", "LogGroup": format!("/aws/lambda/{}", f.name) },
    })
}

/// `Code` of `CreateFunction`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CodeInput {
    zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    s3_bucket: Option<String>,
    #[serde(rename = "S3Key")]
    s3_key: Option<String>,
    image_uri: Option<String>,
}

/// `Environment`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EnvironmentInput {
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

/// The zip of `Code`/`UpdateFunctionCode`: only `ZipFile` is supported.
fn zip_of(code: &CodeInput) -> Result<Vec<u8>, LambdaError> {
    if code.s3_bucket.is_some() || code.s3_key.is_some() || code.image_uri.is_some() {
        return Err(LambdaError::InvalidParameterValue(
            "Ferrule supports only ZipFile code: upload the zip in the request \
             (--zip-file fileb://function.zip); S3Bucket/S3Key and ImageUri are not supported"
                .to_owned(),
        ));
    }
    let zip = code.zip_file.as_deref().ok_or_else(|| {
        LambdaError::InvalidParameterValue(
            "Code.ZipFile is required: upload the function's zip (--zip-file fileb://function.zip)"
                .to_owned(),
        )
    })?;
    validate::zip_file(zip)
}

/// Refuses what Ferrule does not have (versions, layers, images, other architectures).
fn refuse_unsupported(
    publish: bool,
    layers: Option<&[String]>,
    architectures: Option<&[String]>,
    package_type: Option<&str>,
) -> Result<(), LambdaError> {
    let refuse = |what: &str| {
        Err(LambdaError::InvalidParameterValue(format!(
            "{what} is not supported by Ferrule"
        )))
    };
    if publish {
        return refuse("Publishing versions (Publish=true)");
    }
    if layers.is_some_and(|l| !l.is_empty()) {
        return refuse("Layers");
    }
    if architectures.is_some_and(|a| a.iter().any(|a| a != "x86_64")) {
        return refuse("An architecture other than x86_64");
    }
    if package_type.is_some_and(|p| p != "Zip") {
        return refuse("PackageType Image (only Zip)");
    }
    Ok(())
}

/// `POST /2015-03-31/functions`.
pub(super) async fn create_function(
    State(st): State<ApiState>,
    req: Result<Call, ApiError>,
) -> LambdaReply {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        function_name: Option<String>,
        runtime: Option<String>,
        role: Option<String>,
        #[serde(default)]
        handler: String,
        code: Option<CodeInput>,
        #[serde(default)]
        description: String,
        timeout: Option<i64>,
        memory_size: Option<i64>,
        #[serde(default)]
        publish: bool,
        package_type: Option<String>,
        environment: Option<EnvironmentInput>,
        #[serde(default)]
        tags: BTreeMap<String, String>,
        layers: Option<Vec<String>>,
        architectures: Option<Vec<String>>,
    }
    let req = call(req)?;
    let input: Input = body(&req)?;
    let required = |member: &str| {
        LambdaError::InvalidParameterValue(format!("{member} is required but was not given"))
    };
    let raw_name = input
        .function_name
        .as_deref()
        .ok_or_else(|| required("FunctionName"))?;
    let name = names::resolve(&st, raw_name, None)?;
    names::check_new_name(&name)?;
    refuse_unsupported(
        input.publish,
        input.layers.as_deref(),
        input.architectures.as_deref(),
        input.package_type.as_deref(),
    )?;
    let role = input.role.ok_or_else(|| required("Role"))?;
    let runtime = input.runtime.ok_or_else(|| {
        LambdaError::InvalidParameterValue(
            "Runtime and Handler are mandatory parameters for functions created with \
             deployment packages."
                .to_owned(),
        )
    })?;
    let python = validate::check_runtime(&runtime)?;
    validate::check_handler(&input.handler, python)?;
    validate::check_description(&input.description)?;
    let timeout = validate::check_range("Timeout", input.timeout.unwrap_or(TIMEOUT.2), TIMEOUT)?;
    let memory =
        validate::check_range("MemorySize", input.memory_size.unwrap_or(MEMORY.2), MEMORY)?;
    let environment = input.environment.unwrap_or_default().variables;
    validate::check_environment(&environment)?;
    let tags: Vec<Tag> = input
        .tags
        .into_iter()
        .map(|(key, value)| Tag { key, value })
        .collect();
    let tags = tag_pairs(&tags)?;
    let zip = zip_of(&input.code.ok_or_else(|| required("Code"))?)?;
    validate::check_role(&st, &role).await?;

    let now = crate::now_ms();
    let record = FunctionRecord {
        name: name.clone(),
        runtime,
        handler: input.handler,
        role,
        description: input.description,
        timeout_s: timeout,
        memory_mb: memory,
        environment,
        code_sha256: validate::code_sha256(&zip),
        code_size: i64::try_from(zip.len()).unwrap_or(i64::MAX),
        revision_id: crate::auth::new_request_id(),
        created_ms: now,
        last_modified_ms: now,
    };
    let arn = function_arn(&st, &name);
    st.registry()
        .create_function(&record, &zip)
        .await
        .map_err(|e| LambdaError::from_registry(e, &arn))?;
    if !tags.is_empty() {
        st.registry()
            .tag_resource(&arn, &tags)
            .await
            .map_err(|e| LambdaError::from_registry(e, &arn))?;
    }
    json_reply(StatusCode::CREATED, configuration(&st, &record))
}

/// `GET /2015-03-31/functions/{FunctionName}/configuration`.
pub(super) async fn get_function_configuration(
    State(st): State<ApiState>,
    req: Result<Call, ApiError>,
) -> LambdaReply {
    let req = call(req)?;
    let f = load(&st, &function_name(&st, &req)?).await?;
    json_reply(StatusCode::OK, configuration(&st, &f))
}

/// `GET /2015-03-31/functions/{FunctionName}`: the configuration, where to download the code
/// (this endpoint's [`get_function_code`] route, which needs a signature like every other)
/// and the tags.
pub(super) async fn get_function(
    State(st): State<ApiState>,
    req: Result<Call, ApiError>,
) -> LambdaReply {
    let req = call(req)?;
    let f = load(&st, &function_name(&st, &req)?).await?;
    let arn = function_arn(&st, &f.name);
    let tags: Map<String, Value> = st
        .registry()
        .list_tags(&arn)
        .await
        .map_err(|e| LambdaError::from_registry(e, &arn))?
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let host = req.header("host")?.unwrap_or("localhost");
    let scheme = match req.header("x-forwarded-proto")? {
        Some("https") => "https",
        _ => "http",
    };
    let location = format!("{scheme}://{host}/2015-03-31/functions/{}/code-zip", f.name);
    json_reply(
        StatusCode::OK,
        json!({
            "Configuration": configuration(&st, &f),
            "Code": { "RepositoryType": "S3", "Location": location },
            "Tags": (!tags.is_empty()).then_some(tags),
        }),
    )
}

/// `GET /2015-03-31/functions/{FunctionName}/code-zip`: Ferrule's own route for the
/// `Code.Location` of `GetFunction`, the stored zip.
pub(super) async fn get_function_code(
    State(st): State<ApiState>,
    req: Result<Call, ApiError>,
) -> LambdaReply {
    let req = call(req)?;
    let name = function_name(&st, &req)?;
    let arn = function_arn(&st, &name);
    let zip = st
        .registry()
        .get_function_code(&name)
        .await
        .map_err(|e| LambdaError::from_registry(e, &arn))?
        .ok_or_else(|| LambdaError::function_not_found(&arn))?;
    let mut response = Body::from(zip).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    Ok(response)
}

/// `GET /2015-03-31/functions/`: `Marker`/`MaxItems` paging, ordered by name.
pub(super) async fn list_functions(
    State(st): State<ApiState>,
    req: Result<Call, ApiError>,
) -> LambdaReply {
    let req = call(req)?;
    let max_items = req
        .query_int("MaxItems", 1, MAX_MAX_ITEMS)?
        .unwrap_or(DEFAULT_MAX_ITEMS);
    if let Some(v) = req.query("FunctionVersion")
        && v != "ALL"
    {
        return Err(LambdaError::InvalidParameterValue(format!(
            "FunctionVersion must be ALL, not {v:?}"
        )));
    }
    let page = PageRequest {
        marker: req
            .query("Marker")
            .filter(|m| !m.is_empty())
            .map(str::to_owned),
        page_size: usize::try_from(max_items).unwrap_or(1),
        ascending: true,
    };
    let page = st
        .registry()
        .list_functions(&page)
        .await
        .map_err(|e| LambdaError::from_registry(e, ""))?;
    let functions: Vec<Value> = page.items.iter().map(|f| configuration(&st, f)).collect();
    json_reply(
        StatusCode::OK,
        json!({ "Functions": functions, "NextMarker": page.next_marker }),
    )
}

/// `PUT /2015-03-31/functions/{FunctionName}/code`: new zip, new `CodeSha256` and
/// `RevisionId`. `DryRun` checks the zip and answers what the configuration would be.
pub(super) async fn update_function_code(
    State(st): State<ApiState>,
    req: Result<Call, ApiError>,
) -> LambdaReply {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        #[serde(flatten)]
        code: CodeInput,
        #[serde(default)]
        publish: bool,
        #[serde(default)]
        dry_run: bool,
        revision_id: Option<String>,
        architectures: Option<Vec<String>>,
    }
    let req = call(req)?;
    let name = function_name(&st, &req)?;
    let input: Input = body(&req)?;
    refuse_unsupported(input.publish, None, input.architectures.as_deref(), None)?;
    let zip = zip_of(&input.code)?;
    let current = load(&st, &name).await?;
    check_revision(&current, input.revision_id.as_deref())?;
    let sha = validate::code_sha256(&zip);
    if input.dry_run {
        let would_be = FunctionRecord {
            code_sha256: sha,
            code_size: i64::try_from(zip.len()).unwrap_or(i64::MAX),
            ..current
        };
        return json_reply(StatusCode::OK, configuration(&st, &would_be));
    }
    let arn = function_arn(&st, &name);
    let updated = st
        .registry()
        .update_function_code(
            &name,
            &zip,
            &sha,
            &crate::auth::new_request_id(),
            crate::now_ms(),
        )
        .await
        .map_err(|e| LambdaError::from_registry(e, &arn))?;
    json_reply(StatusCode::OK, configuration(&st, &updated))
}

/// `PUT /2015-03-31/functions/{FunctionName}/configuration`: the members given replace the
/// stored ones (`Environment` as a whole), and the result is checked as `CreateFunction`
/// checks it.
pub(super) async fn update_function_configuration(
    State(st): State<ApiState>,
    req: Result<Call, ApiError>,
) -> LambdaReply {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        role: Option<String>,
        handler: Option<String>,
        description: Option<String>,
        timeout: Option<i64>,
        memory_size: Option<i64>,
        environment: Option<EnvironmentInput>,
        runtime: Option<String>,
        revision_id: Option<String>,
        layers: Option<Vec<String>>,
    }
    let req = call(req)?;
    let name = function_name(&st, &req)?;
    let input: Input = body(&req)?;
    refuse_unsupported(false, input.layers.as_deref(), None, None)?;
    let current = load(&st, &name).await?;
    check_revision(&current, input.revision_id.as_deref())?;
    let mut f = current.clone();
    if let Some(runtime) = input.runtime {
        f.runtime = runtime;
    }
    let python = validate::check_runtime(&f.runtime)?;
    if let Some(handler) = input.handler {
        f.handler = handler;
    }
    validate::check_handler(&f.handler, python)?;
    if let Some(description) = input.description {
        validate::check_description(&description)?;
        f.description = description;
    }
    if let Some(timeout) = input.timeout {
        f.timeout_s = validate::check_range("Timeout", timeout, TIMEOUT)?;
    }
    if let Some(memory) = input.memory_size {
        f.memory_mb = validate::check_range("MemorySize", memory, MEMORY)?;
    }
    if let Some(environment) = input.environment {
        validate::check_environment(&environment.variables)?;
        f.environment = environment.variables;
    }
    if let Some(role) = input.role {
        validate::check_role(&st, &role).await?;
        f.role = role;
    }
    f.revision_id = crate::auth::new_request_id();
    f.last_modified_ms = crate::now_ms();
    let arn = function_arn(&st, &name);
    let updated = st
        .registry()
        .update_function_configuration(&f)
        .await
        .map_err(|e| LambdaError::from_registry(e, &arn))?;
    json_reply(StatusCode::OK, configuration(&st, &updated))
}

/// `DELETE /2015-03-31/functions/{FunctionName}`: the function, its code, its permissions
/// and its tags. 204, as Lambda answers.
pub(super) async fn delete_function(
    State(st): State<ApiState>,
    req: Result<Call, ApiError>,
) -> LambdaReply {
    let req = call(req)?;
    let name = function_name(&st, &req)?;
    let arn = function_arn(&st, &name);
    let registry = st.registry();
    registry
        .delete_function(&name)
        .await
        .map_err(|e| LambdaError::from_registry(e, &arn))?;
    let keys: Vec<String> = registry
        .list_tags(&arn)
        .await
        .map_err(|e| LambdaError::from_registry(e, &arn))?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    if !keys.is_empty() {
        registry
            .untag_resource(&arn, &keys)
            .await
            .map_err(|e| LambdaError::from_registry(e, &arn))?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::last_modified;

    #[test]
    fn last_modified_is_lambdas_format() {
        assert_eq!(last_modified(0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(
            last_modified(1_795_946_400_123),
            "2026-11-29T10:00:00.123+0000"
        );
    }
}
