//! Authorization of IAM callers: which IAM action and resource ARN each request is, and the
//! decision of the caller's identity policies on it.
//!
//! The admin credentials may do anything. IAM users and role sessions ([`Caller`]) may do what
//! their inline policies allow: every request becomes one `service:Operation` action (the
//! operation's name in botocore's model, so `iot:UpdateCertificate`, `lambda:InvokeFunction`,
//! `iam:PutRolePolicy`, `logs:PutLogEvents`) on one resource ARN, and [`ferrule_policy`]
//! evaluates it against the caller's policies as IAM does: an explicit Deny wins, and an Allow
//! is needed. A refusal is AWS's `AccessDeniedException`, worded as AWS words it.
//!
//! The table ([`ROUTES`]) maps every route of [`crate::router`] (its method and path pattern,
//! from axum's `MatchedPath`) to its action and where the resource comes from. A route missing
//! from the table is refused to everyone but the admin, and a unit test checks that every
//! route in `ops/mod.rs` has an entry. `POST /` carries two services: IAM's query protocol
//! (`Action=` in a form body: `iam:<Action>` on the role or user it names) and CloudWatch Logs
//! (`X-Amz-Target: Logs_20140328.<Operation>`: `logs:<Operation>` on the log group it names).
//!
//! Order of calls: [`target`] (pure: the request's parts → action and resource), then
//! [`authorize`] (reads the caller's policies from the registry and decides).

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method};
use ferrule_policy::{Context, Decision, Policy, Request};
use ferrule_store::{IamEntity, RegistryError};
use serde::Deserialize;

use crate::arn::Arns;
use crate::error::ApiError;
use crate::{ApiConfig, ApiState};

/// Who signed a request, as the authentication layer found out. A request extension on every
/// authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The configured admin credentials: every operation is allowed.
    Admin,
    /// An IAM user, by an active access key of theirs.
    User {
        /// The user's name, as stored.
        name: String,
    },
    /// Temporary credentials of an IAM role (a session the registry issued).
    RoleSession {
        /// The role's name.
        role_name: String,
        /// The session's name.
        session_name: String,
    },
}

/// Where a route's resource ARN comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Res {
    /// `*`: lists, and operations on no particular resource.
    Any,
    /// `cert/{label}`.
    Cert(&'static str),
    /// `cacert/{label}`.
    CaCert(&'static str),
    /// `policy/{label}`.
    Policy(&'static str),
    /// `thing/{label}`.
    Thing(&'static str),
    /// `rule/{label}`.
    Rule(&'static str),
    /// The `resourceArn` of a tagging call (query string or JSON body).
    Tagged,
    /// `function:{label}` (a Lambda function name, partial ARN or ARN).
    Function(&'static str),
    /// `function:{FunctionName}` from the JSON body (`CreateFunction`).
    FunctionInBody,
    /// `POST /`: IAM or CloudWatch Logs, sorted out from the headers and body.
    PostRoot,
}

/// One route: method, axum path pattern, IAM action, resource.
pub(crate) type Route = (&'static str, &'static str, &'static str, Res);

/// Every route of the router with its IAM action (botocore's operation name) and resource.
#[rustfmt::skip]
pub(crate) const ROUTES: &[Route] = &[
    // Registration code and CA certificates.
    ("GET", "/registrationcode", "iot:GetRegistrationCode", Res::Any),
    ("DELETE", "/registrationcode", "iot:DeleteRegistrationCode", Res::Any),
    ("POST", "/cacertificate", "iot:RegisterCACertificate", Res::Any),
    ("GET", "/cacertificate/{caCertificateId}", "iot:DescribeCACertificate", Res::CaCert("caCertificateId")),
    ("PUT", "/cacertificate/{caCertificateId}", "iot:UpdateCACertificate", Res::CaCert("caCertificateId")),
    ("DELETE", "/cacertificate/{caCertificateId}", "iot:DeleteCACertificate", Res::CaCert("caCertificateId")),
    ("GET", "/cacertificates", "iot:ListCACertificates", Res::Any),
    // Device certificates.
    ("POST", "/certificate/register", "iot:RegisterCertificate", Res::Any),
    ("POST", "/certificate/register-no-ca", "iot:RegisterCertificateWithoutCA", Res::Any),
    ("GET", "/certificates", "iot:ListCertificates", Res::Any),
    ("POST", "/certificates", "iot:CreateCertificateFromCsr", Res::Any),
    ("GET", "/certificates/{certificateId}", "iot:DescribeCertificate", Res::Cert("certificateId")),
    ("PUT", "/certificates/{certificateId}", "iot:UpdateCertificate", Res::Cert("certificateId")),
    ("DELETE", "/certificates/{certificateId}", "iot:DeleteCertificate", Res::Cert("certificateId")),
    ("GET", "/certificates-by-ca/{caCertificateId}", "iot:ListCertificatesByCA", Res::Any),
    ("POST", "/keys-and-certificate", "iot:CreateKeysAndCertificate", Res::Any),
    // Policies.
    ("GET", "/policies", "iot:ListPolicies", Res::Any),
    ("POST", "/policies/{policyName}", "iot:CreatePolicy", Res::Policy("policyName")),
    ("GET", "/policies/{policyName}", "iot:GetPolicy", Res::Policy("policyName")),
    ("DELETE", "/policies/{policyName}", "iot:DeletePolicy", Res::Policy("policyName")),
    ("POST", "/policies/{policyName}/version", "iot:CreatePolicyVersion", Res::Policy("policyName")),
    ("GET", "/policies/{policyName}/version", "iot:ListPolicyVersions", Res::Policy("policyName")),
    ("GET", "/policies/{policyName}/version/{policyVersionId}", "iot:GetPolicyVersion", Res::Policy("policyName")),
    ("PATCH", "/policies/{policyName}/version/{policyVersionId}", "iot:SetDefaultPolicyVersion", Res::Policy("policyName")),
    ("DELETE", "/policies/{policyName}/version/{policyVersionId}", "iot:DeletePolicyVersion", Res::Policy("policyName")),
    ("PUT", "/target-policies/{policyName}", "iot:AttachPolicy", Res::Policy("policyName")),
    ("POST", "/target-policies/{policyName}", "iot:DetachPolicy", Res::Policy("policyName")),
    ("PUT", "/principal-policies/{policyName}", "iot:AttachPrincipalPolicy", Res::Policy("policyName")),
    ("DELETE", "/principal-policies/{policyName}", "iot:DetachPrincipalPolicy", Res::Policy("policyName")),
    ("GET", "/principal-policies", "iot:ListPrincipalPolicies", Res::Any),
    ("POST", "/attached-policies/{target}", "iot:ListAttachedPolicies", Res::Any),
    ("POST", "/policy-targets/{policyName}", "iot:ListTargetsForPolicy", Res::Policy("policyName")),
    ("GET", "/policy-principals", "iot:ListPolicyPrincipals", Res::Any),
    ("POST", "/test-authorization", "iot:TestAuthorization", Res::Any),
    // Things.
    ("GET", "/things", "iot:ListThings", Res::Any),
    ("POST", "/things/{thingName}", "iot:CreateThing", Res::Thing("thingName")),
    ("GET", "/things/{thingName}", "iot:DescribeThing", Res::Thing("thingName")),
    ("PATCH", "/things/{thingName}", "iot:UpdateThing", Res::Thing("thingName")),
    ("DELETE", "/things/{thingName}", "iot:DeleteThing", Res::Thing("thingName")),
    ("PUT", "/things/{thingName}/principals", "iot:AttachThingPrincipal", Res::Thing("thingName")),
    ("DELETE", "/things/{thingName}/principals", "iot:DetachThingPrincipal", Res::Thing("thingName")),
    ("GET", "/things/{thingName}/principals", "iot:ListThingPrincipals", Res::Thing("thingName")),
    ("GET", "/principals/things", "iot:ListPrincipalThings", Res::Any),
    // Topic rules.
    ("GET", "/rules", "iot:ListTopicRules", Res::Any),
    ("POST", "/rules/{ruleName}", "iot:CreateTopicRule", Res::Rule("ruleName")),
    ("GET", "/rules/{ruleName}", "iot:GetTopicRule", Res::Rule("ruleName")),
    ("PATCH", "/rules/{ruleName}", "iot:ReplaceTopicRule", Res::Rule("ruleName")),
    ("DELETE", "/rules/{ruleName}", "iot:DeleteTopicRule", Res::Rule("ruleName")),
    ("POST", "/rules/{ruleName}/enable", "iot:EnableTopicRule", Res::Rule("ruleName")),
    ("POST", "/rules/{ruleName}/disable", "iot:DisableTopicRule", Res::Rule("ruleName")),
    // Endpoint and tags.
    ("GET", "/endpoint", "iot:DescribeEndpoint", Res::Any),
    ("GET", "/tags", "iot:ListTagsForResource", Res::Tagged),
    ("POST", "/tags", "iot:TagResource", Res::Tagged),
    ("POST", "/untag", "iot:UntagResource", Res::Tagged),
    // Lambda.
    ("POST", "/2015-03-31/functions", "lambda:CreateFunction", Res::FunctionInBody),
    ("GET", "/2015-03-31/functions", "lambda:ListFunctions", Res::Any),
    ("GET", "/2015-03-31/functions/", "lambda:ListFunctions", Res::Any),
    ("GET", "/2015-03-31/functions/{FunctionName}", "lambda:GetFunction", Res::Function("FunctionName")),
    ("GET", "/2015-03-31/functions/{FunctionName}/configuration", "lambda:GetFunctionConfiguration", Res::Function("FunctionName")),
    ("PUT", "/2015-03-31/functions/{FunctionName}/code", "lambda:UpdateFunctionCode", Res::Function("FunctionName")),
    // Ferrule's download route for GetFunction's `Code.Location`: part of GetFunction.
    ("GET", "/2015-03-31/functions/{FunctionName}/code-zip", "lambda:GetFunction", Res::Function("FunctionName")),
    ("PUT", "/2015-03-31/functions/{FunctionName}/configuration", "lambda:UpdateFunctionConfiguration", Res::Function("FunctionName")),
    ("DELETE", "/2015-03-31/functions/{FunctionName}", "lambda:DeleteFunction", Res::Function("FunctionName")),
    ("POST", "/2015-03-31/functions/{FunctionName}/invocations", "lambda:InvokeFunction", Res::Function("FunctionName")),
    ("POST", "/2015-03-31/functions/{FunctionName}/policy", "lambda:AddPermission", Res::Function("FunctionName")),
    ("GET", "/2015-03-31/functions/{FunctionName}/policy", "lambda:GetPolicy", Res::Function("FunctionName")),
    ("DELETE", "/2015-03-31/functions/{FunctionName}/policy/{StatementId}", "lambda:RemovePermission", Res::Function("FunctionName")),
    // CloudWatch Logs (JSON 1.1) and IAM (query).
    ("POST", "/", "", Res::PostRoot),
];

/// The `X-Amz-Target` prefix of CloudWatch Logs' operations.
const LOGS_TARGET_PREFIX: &str = "Logs_20140328.";

/// What a request asks to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `action` on `resource`.
    Operation {
        /// `service:Operation`.
        action: String,
        /// The resource ARN, or `*`.
        resource: String,
    },
    /// `POST /` naming no operation: the handler answers `UnknownOperationException` and does
    /// nothing, whoever asks.
    Nothing,
    /// A route the table does not know: only the admin may call it.
    Unmapped,
}

/// The request, as far as authorization needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asked<'a> {
    /// The method (`HEAD` counts as `GET`, as the router routes it).
    pub(crate) method: &'a Method,
    /// The matched route's pattern (`/certificates/{certificateId}`).
    pub(crate) route: &'a str,
    /// The route's path labels, percent-decoded.
    pub(crate) labels: &'a [(String, String)],
    /// The raw query string.
    pub(crate) query: Option<&'a str>,
    /// The request headers.
    pub(crate) headers: &'a HeaderMap,
    /// The whole body.
    pub(crate) body: &'a [u8],
}

/// The action and resource of a request, for `caller`. Pure.
pub(crate) fn target(
    config: &ApiConfig,
    arns: &Arns,
    caller: &Caller,
    asked: &Asked<'_>,
) -> Target {
    let method = if asked.method == Method::HEAD {
        "GET"
    } else {
        asked.method.as_str()
    };
    let Some(&(_, _, action, res)) = ROUTES
        .iter()
        .find(|(m, p, _, _)| *m == method && *p == asked.route)
    else {
        return Target::Unmapped;
    };
    let label = |name: &str| {
        asked
            .labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let resource = match res {
        Res::Any => "*".to_owned(),
        Res::Cert(l) => arns.certificate(&label(l).to_ascii_lowercase()),
        Res::CaCert(l) => arns.ca_certificate(&label(l).to_ascii_lowercase()),
        Res::Policy(l) => arns.policy(label(l)),
        Res::Thing(l) => arns.thing(label(l)),
        Res::Rule(l) => arns.rule(label(l)),
        Res::Tagged => tagged_resource(asked).unwrap_or_else(|| "*".to_owned()),
        Res::Function(l) => function_arn(config, label(l)),
        Res::FunctionInBody => {
            #[derive(Deserialize)]
            struct Body {
                #[serde(rename = "FunctionName")]
                function_name: Option<String>,
            }
            match serde_json::from_slice::<Body>(asked.body) {
                Ok(Body {
                    function_name: Some(name),
                }) => function_arn(config, &name),
                _ => "*".to_owned(),
            }
        }
        Res::PostRoot => return post_root_target(config, caller, asked),
    };
    Target::Operation {
        action: action.to_owned(),
        resource,
    }
}

/// `resourceArn` from the query (`ListTagsForResource`) or the JSON body (`TagResource`,
/// `UntagResource`).
fn tagged_resource(asked: &Asked<'_>) -> Option<String> {
    if let Some(arn) = asked.query.and_then(|q| {
        crate::extract::parse_query(q)
            .into_iter()
            .find(|(k, _)| k == "resourceArn")
            .map(|(_, v)| v)
    }) {
        return Some(arn);
    }
    #[derive(Deserialize)]
    struct Body {
        #[serde(rename = "resourceArn")]
        resource_arn: Option<String>,
    }
    serde_json::from_slice::<Body>(asked.body)
        .ok()
        .and_then(|b| b.resource_arn)
        .filter(|a| !a.is_empty())
}

/// The partition of `region`'s ARNs.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME` for a `FunctionName` given as a name, a
/// partial ARN (`ACCOUNT:function:NAME`) or an ARN (a version or alias qualifier dropped).
pub(crate) fn function_arn(config: &ApiConfig, function_name: &str) -> String {
    let parts: Vec<&str> = function_name.split(':').collect();
    let name = match parts.as_slice() {
        ["arn", _, "lambda", _, _, "function", name, ..] => name,
        [_, "function", name, ..] => name,
        [name, ..] => name,
        [] => "",
    };
    format!(
        "arn:{}:lambda:{}:{}:function:{name}",
        partition(&config.region),
        config.region,
        config.account_id
    )
}

/// `arn:aws:iam::ACCOUNT:{kind}{path}{name}`.
fn iam_arn(config: &ApiConfig, kind: &str, path: &str, name: &str) -> String {
    format!(
        "arn:{}:iam::{}:{kind}{path}{name}",
        partition(&config.region),
        config.account_id
    )
}

/// `POST /`: an IAM action (form body) or a CloudWatch Logs operation (`X-Amz-Target`).
fn post_root_target(config: &ApiConfig, caller: &Caller, asked: &Asked<'_>) -> Target {
    if crate::ops::is_query_request(
        &Method::POST,
        &axum::http::Uri::from_static("/"),
        asked.headers,
    ) {
        let form = form_pairs(asked.body);
        let get = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let Some(action) = get("Action") else {
            return Target::Nothing;
        };
        let path = get("Path").unwrap_or("/");
        let resource = if let Some(role) = get("RoleName") {
            iam_arn(config, "role", path, role)
        } else if let Some(user) = get("UserName") {
            iam_arn(config, "user", path, user)
        } else {
            match caller {
                // Without UserName, the user and access-key operations act on the caller.
                Caller::User { name }
                    if action.contains("AccessKey") || action.ends_with("User") =>
                {
                    iam_arn(config, "user", path, name)
                }
                _ => "*".to_owned(),
            }
        };
        return Target::Operation {
            action: format!("iam:{action}"),
            resource,
        };
    }
    let target = asked
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(op) = target.strip_prefix(LOGS_TARGET_PREFIX) else {
        return Target::Nothing;
    };
    #[derive(Deserialize)]
    struct Body {
        #[serde(rename = "logGroupName")]
        log_group_name: Option<String>,
    }
    let resource = match serde_json::from_slice::<Body>(asked.body) {
        Ok(Body {
            log_group_name: Some(group),
        }) if !group.is_empty() => format!(
            "arn:{}:logs:{}:{}:log-group:{group}:*",
            partition(&config.region),
            config.region,
            config.account_id
        ),
        _ => "*".to_owned(),
    };
    Target::Operation {
        action: format!("logs:{op}"),
        resource,
    }
}

/// The `name=value` pairs of a form body, decoded (`+` is a space). Undecodable pairs are
/// dropped: the IAM front refuses such a body itself.
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Vec::new();
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    text.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

/// Whom the policies are evaluated for: the ARNs and ids IAM's global condition keys hold.
struct Principal {
    /// What AccessDenied names: the user's ARN, or the session's `assumed-role` ARN.
    display_arn: String,
    /// `aws:PrincipalArn`: the user's or the role's ARN.
    principal_arn: String,
    /// `aws:userid`.
    user_id: String,
    /// `aws:PrincipalType`.
    principal_type: &'static str,
    /// `aws:username` (users only).
    user_name: Option<String>,
    /// The entity whose inline policies apply.
    entity: IamEntity,
    /// Its name.
    entity_name: String,
}

/// Decides whether `caller` may do what `asked` asks. The admin may do anything; IAM callers
/// need an Allow and no Deny in their inline policies. `peer` is the client's address, for
/// `aws:SourceIp`.
pub(crate) async fn authorize(
    state: &ApiState,
    caller: &Caller,
    asked: &Asked<'_>,
    peer: Option<&ConnectInfo<SocketAddr>>,
) -> Result<(), ApiError> {
    if *caller == Caller::Admin {
        return Ok(());
    }
    let target = target(state.config(), state.arns(), caller, asked);
    if target == Target::Nothing {
        return Ok(());
    }
    let principal = principal(state, caller).await?;
    let (action, resource) = match target {
        Target::Nothing => return Ok(()),
        Target::Unmapped => {
            return Err(ApiError::AccessDenied(format!(
                "User: {} is not authorized to perform: {} {}: the operation has no IAM \
                 action, so only the admin credentials may call it",
                principal.display_arn, asked.method, asked.route
            )));
        }
        Target::Operation { action, resource } => (action, resource),
    };
    let resource = with_iam_path(state, resource).await?;
    let policies = identity_policies(state, principal.entity, &principal.entity_name).await?;
    let ctx = context(state.config(), &principal, peer.map(|c| c.0));
    let decision = ferrule_policy::evaluate(
        policies.iter().map(|(n, p)| (n.as_str(), p)),
        &Request {
            action: &action,
            resource: &resource,
        },
        &ctx,
    );
    let why = match decision {
        Decision::Allow { .. } => return Ok(()),
        Decision::ExplicitDeny { .. } => {
            "with an explicit deny in an identity-based policy".to_owned()
        }
        Decision::ImplicitDeny => {
            format!("because no identity-based policy allows the {action} action")
        }
    };
    tracing::info!(
        principal = principal.display_arn,
        action,
        resource,
        ?decision,
        "request denied by identity policies"
    );
    Err(ApiError::AccessDenied(format!(
        "User: {} is not authorized to perform: {action} on resource: {resource} {why}",
        principal.display_arn
    )))
}

/// An IAM role or user ARN without a path (`role/NAME`, as the request names it) with the
/// path and name the entity is stored with (`role/service/Name`), as IAM's resource ARNs
/// are. Anything else, or an entity that does not exist, is returned as it is.
async fn with_iam_path(state: &ApiState, resource: String) -> Result<String, ApiError> {
    let Some((prefix, rest)) = resource.split_once(":iam::") else {
        return Ok(resource);
    };
    let Some((account, entity)) = rest.split_once(':') else {
        return Ok(resource);
    };
    let stored = match entity.split_once('/') {
        Some(("role", name)) if !name.contains('/') => state
            .registry()
            .get_iam_role(name)
            .await?
            .map(|r| ("role", r.path, r.name)),
        Some(("user", name)) if !name.contains('/') => state
            .registry()
            .get_iam_user(name)
            .await?
            .map(|u| ("user", u.path, u.name)),
        _ => None,
    };
    Ok(match stored {
        Some((kind, path, name)) => format!("{prefix}:iam::{account}:{kind}{path}{name}"),
        None => resource,
    })
}

async fn principal(state: &ApiState, caller: &Caller) -> Result<Principal, ApiError> {
    let config = state.config();
    let registry = state.registry();
    match caller {
        Caller::User { name } => {
            let user = registry.get_iam_user(name).await?;
            let (path, user_id) = user
                .map(|u| (u.path, u.user_id))
                .unwrap_or_else(|| ("/".to_owned(), String::new()));
            let arn = iam_arn(config, "user", &path, name);
            Ok(Principal {
                display_arn: arn.clone(),
                principal_arn: arn,
                user_id,
                principal_type: "User",
                user_name: Some(name.clone()),
                entity: IamEntity::User,
                entity_name: name.clone(),
            })
        }
        Caller::RoleSession {
            role_name,
            session_name,
        } => {
            let role = registry.get_iam_role(role_name).await?;
            let (path, role_id) = role
                .map(|r| (r.path, r.role_id))
                .unwrap_or_else(|| ("/".to_owned(), String::new()));
            Ok(Principal {
                display_arn: format!(
                    "arn:{}:sts::{}:assumed-role/{role_name}/{session_name}",
                    partition(&config.region),
                    config.account_id
                ),
                principal_arn: iam_arn(config, "role", &path, role_name),
                user_id: format!("{role_id}:{session_name}"),
                principal_type: "AssumedRole",
                user_name: None,
                entity: IamEntity::Role,
                entity_name: role_name.clone(),
            })
        }
        // Not reached: the admin is not evaluated.
        Caller::Admin => Err(ApiError::Internal(
            "the admin has no identity policies".to_owned(),
        )),
    }
}

/// The inline policies of a user or role, parsed. A document that does not parse is skipped
/// with a warning: it allows nothing (and denies nothing), as a policy IAM would not have
/// accepted.
async fn identity_policies(
    state: &ApiState,
    entity: IamEntity,
    name: &str,
) -> Result<Vec<(String, Policy)>, ApiError> {
    let registry = state.registry();
    let names = match registry.list_iam_inline_policies(entity, name).await {
        Ok(names) => names,
        // Deleted since the key or session was issued: no policies.
        Err(RegistryError::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::with_capacity(names.len());
    for policy_name in names {
        let document = match registry
            .get_iam_inline_policy(entity, name, &policy_name)
            .await
        {
            Ok(Some(d)) => d,
            Ok(None) | Err(RegistryError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        match Policy::parse_identity(&document) {
            Ok(p) => out.push((policy_name, p)),
            Err(e) => tracing::warn!(
                ?entity,
                name,
                policy_name,
                error = %e,
                "an inline policy cannot be evaluated and is ignored"
            ),
        }
    }
    Ok(out)
}

/// IAM's global condition keys for this request, lowercase as
/// [`Policy::parse_identity`] expects.
fn context(config: &ApiConfig, p: &Principal, peer: Option<SocketAddr>) -> Context {
    let mut ctx = Context::default();
    ctx.set("aws:principalarn", p.principal_arn.clone());
    ctx.set("aws:principaltype", p.principal_type);
    ctx.set("aws:principalaccount", config.account_id.clone());
    ctx.set("aws:requestedregion", config.region.clone());
    ctx.set("aws:securetransport", "false");
    if !p.user_id.is_empty() {
        ctx.set("aws:userid", p.user_id.clone());
    }
    if let Some(name) = &p.user_name {
        ctx.set("aws:username", name.clone());
    }
    if let Some(peer) = peer {
        ctx.set("aws:sourceip", peer.ip().to_canonical().to_string());
    }
    let now = crate::now_ms().div_euclid(1000);
    ctx.set("aws:epochtime", now.to_string());
    ctx.set("aws:currenttime", iso8601(now));
    ctx
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (`aws:CurrentTime`).
fn iso8601(secs: i64) -> String {
    let t = crate::sigv4::format_amz_date(secs);
    let part = |r: std::ops::Range<usize>| t.get(r).unwrap_or_default();
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        part(0..4),
        part(4..6),
        part(6..8),
        part(9..11),
        part(11..13),
        part(13..15)
    )
}

#[cfg(test)]
mod tests;
