//! DescribeEndpoint and the tag operations (ListTagsForResource, TagResource, UntagResource).

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Reply, Tag, empty, reply, tag_pairs};
use crate::ApiState;
use crate::arn::Resource;
use crate::error::ApiError;
use crate::extract::Call;

/// The endpoint types AWS documents. Each gets the same answer: Ferrule serves data, jobs and
/// credentials (when it has them) on one host.
const ENDPOINT_TYPES: &[&str] = &[
    "iot:Data",
    "iot:Data-ATS",
    "iot:CredentialProvider",
    "iot:Jobs",
];

/// Returns the host of the MQTT endpoint, without the port: AWS returns a bare host name and
/// devices use the standard MQTT port, which for Ferrule is the mqtts listener's port.
pub(super) async fn describe_endpoint(State(st): State<ApiState>, call: Call) -> Reply {
    if let Some(kind) = call.query("endpointType")
        && !ENDPOINT_TYPES.contains(&kind)
    {
        return Err(ApiError::InvalidRequest(format!(
            "endpointType: {kind:?} is not valid; expected one of {}",
            ENDPOINT_TYPES.join(", ")
        )));
    }
    reply(json!({ "endpointAddress": endpoint_host(&st.config().mqtt_endpoint) }))
}

/// `host:port` → `host`; `[::1]:8883` → `::1`; a bare host stays as it is.
fn endpoint_host(endpoint: &str) -> &str {
    if let Some(rest) = endpoint.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(host, _)| host);
    }
    match endpoint.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => endpoint,
    }
}

/// Checks that `arn` names a resource that exists and can carry tags.
async fn check_taggable(st: &ApiState, arn: &str) -> Result<(), ApiError> {
    let registry = st.registry();
    let exists = match st.arns().parse(arn) {
        Some(Resource::Certificate(id)) => registry.get_certificate(&id).await?.is_some(),
        Some(Resource::CaCertificate(id)) => registry.get_ca(&id).await?.is_some(),
        Some(Resource::Policy(name)) => registry.get_policy(&name).await?.is_some(),
        Some(Resource::Thing(name)) => registry.get_thing(&name).await?.is_some(),
        Some(Resource::Rule(name)) => registry.get_rule(&name).await?.is_some(),
        None => {
            return Err(ApiError::InvalidRequest(format!(
                "resourceArn {arn:?} is not the ARN of a certificate, CA certificate, policy, thing or \
                 topic rule of this account and region"
            )));
        }
    };
    if exists {
        Ok(())
    } else {
        Err(ApiError::ResourceNotFound(format!(
            "The resource {arn} does not exist"
        )))
    }
}

pub(super) async fn list_tags_for_resource(State(st): State<ApiState>, call: Call) -> Reply {
    let arn = call
        .query("resourceArn")
        .ok_or_else(|| ApiError::missing("resourceArn"))?;
    check_taggable(&st, arn).await?;
    let tags: Vec<Value> = st
        .registry()
        .list_tags(arn)
        .await?
        .into_iter()
        .map(|(k, v)| json!({ "Key": k, "Value": v }))
        .collect();
    reply(json!({ "tags": tags }))
}

pub(super) async fn tag_resource(State(st): State<ApiState>, call: Call) -> Reply {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        resource_arn: String,
        tags: Vec<Tag>,
    }
    let body: Body = call.json()?;
    let tags = tag_pairs(&body.tags)?;
    check_taggable(&st, &body.resource_arn).await?;
    st.registry()
        .tag_resource(&body.resource_arn, &tags)
        .await?;
    empty()
}

pub(super) async fn untag_resource(State(st): State<ApiState>, call: Call) -> Reply {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        resource_arn: String,
        tag_keys: Vec<String>,
    }
    let body: Body = call.json()?;
    check_taggable(&st, &body.resource_arn).await?;
    st.registry()
        .untag_resource(&body.resource_arn, &body.tag_keys)
        .await?;
    empty()
}

#[cfg(test)]
mod tests {
    use super::endpoint_host;

    #[test]
    fn endpoint_host_strips_the_port() {
        assert_eq!(endpoint_host("localhost:8883"), "localhost");
        assert_eq!(endpoint_host("iot.example.com"), "iot.example.com");
        assert_eq!(endpoint_host("[::1]:8883"), "::1");
        assert_eq!(endpoint_host("127.0.0.1:1"), "127.0.0.1");
    }
}
