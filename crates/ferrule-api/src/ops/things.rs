//! Things: CreateThing, DescribeThing, UpdateThing, DeleteThing, ListThings, and their
//! principals (AttachThingPrincipal, DetachThingPrincipal, ListThingPrincipals,
//! ListPrincipalThings).
//!
//! Thing types and billing groups are stored as given: Ferrule has no CreateThingType yet, so
//! a type name is not checked for existence.

use std::collections::BTreeMap;

use axum::extract::State;
use ferrule_store::{RegistryError, ThingRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use super::policies::check_target;
use super::{Reply, check_name, empty, reply, token_page};
use crate::ApiState;
use crate::error::ApiError;
use crate::extract::Call;

const PRINCIPAL_HEADER: &str = "x-amzn-principal";
/// AWS's limits on attributes: 3 without a thing type, 50 with one.
const MAX_ATTRIBUTES_UNTYPED: usize = 3;
const MAX_ATTRIBUTES_TYPED: usize = 50;

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')
}

fn thing_name(call: &Call) -> Result<&str, ApiError> {
    let name = call.label("thingName")?;
    check_name("thingName", name, 128, is_name_char, "[a-zA-Z0-9:_-]+")?;
    Ok(name)
}

fn check_type_name(member: &str, name: &Option<String>) -> Result<(), ApiError> {
    match name {
        Some(n) => check_name(member, n, 128, is_name_char, "[a-zA-Z0-9:_-]+"),
        None => Ok(()),
    }
}

fn check_attributes(attributes: &BTreeMap<String, String>, typed: bool) -> Result<(), ApiError> {
    for (name, value) in attributes {
        check_name(
            "attribute name",
            name,
            128,
            |c| c.is_ascii_alphanumeric() || "_.,@/:#-".contains(c),
            "[a-zA-Z0-9_.,@/:#-]+",
        )?;
        if value.chars().count() > 800
            || !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.,@/:#=[]-".contains(c))
        {
            return Err(ApiError::InvalidRequest(format!(
                "the value of attribute {name:?} is not valid: at most 800 characters matching [a-zA-Z0-9_.,@/:#=\\[\\]-]*"
            )));
        }
    }
    let max = if typed {
        MAX_ATTRIBUTES_TYPED
    } else {
        MAX_ATTRIBUTES_UNTYPED
    };
    if attributes.len() > max {
        return Err(ApiError::InvalidRequest(format!(
            "a thing {} has at most {max} attributes; {} were given",
            if typed {
                "with a thing type"
            } else {
                "without a thing type"
            },
            attributes.len()
        )));
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AttributePayload {
    attributes: Option<BTreeMap<String, String>>,
    merge: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateThingBody {
    thing_type_name: Option<String>,
    attribute_payload: Option<AttributePayload>,
    billing_group_name: Option<String>,
}

pub(super) async fn create_thing(State(st): State<ApiState>, call: Call) -> Reply {
    let name = thing_name(&call)?;
    let body: CreateThingBody = call.json()?;
    check_type_name("thingTypeName", &body.thing_type_name)?;
    check_type_name("billingGroupName", &body.billing_group_name)?;
    let attributes: BTreeMap<String, String> = body
        .attribute_payload
        .and_then(|p| p.attributes)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    check_attributes(&attributes, body.thing_type_name.is_some())?;
    let record = ThingRecord {
        name: name.to_owned(),
        thing_id: crate::auth::uuid_from_hex(&ferrule_pki::random_hex(16)),
        thing_type_name: body.thing_type_name,
        attributes,
        version: 1,
        billing_group_name: body.billing_group_name,
        created_ms: crate::now_ms(),
    };
    let arn = st.arns().thing(name);
    let thing = match st.registry().create_thing(&record).await {
        Ok(thing) => thing,
        Err(RegistryError::AlreadyExists { .. }) => {
            let existing = st.registry().get_thing(name).await?;
            return Err(ApiError::ResourceAlreadyExists {
                message: format!(
                    "Thing {name} already exists in account with different attributes"
                ),
                resource_id: existing
                    .map(|t| t.thing_id)
                    .unwrap_or_else(|| name.to_owned()),
                resource_arn: arn,
            });
        }
        Err(e) => return Err(e.into()),
    };
    reply(json!({ "thingName": thing.name, "thingArn": arn, "thingId": thing.thing_id }))
}

pub(super) async fn describe_thing(State(st): State<ApiState>, call: Call) -> Reply {
    let name = thing_name(&call)?;
    let t = st
        .registry()
        .get_thing(name)
        .await?
        .ok_or_else(|| ApiError::ResourceNotFound(format!("Thing {name} cannot be found.")))?;
    reply(json!({
        "defaultClientId": t.name,
        "thingName": t.name,
        "thingId": t.thing_id,
        "thingArn": st.arns().thing(&t.name),
        "thingTypeName": t.thing_type_name,
        "attributes": t.attributes,
        "version": t.version,
        "billingGroupName": t.billing_group_name,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateThingBody {
    thing_type_name: Option<String>,
    attribute_payload: Option<AttributePayload>,
    expected_version: Option<i64>,
    remove_thing_type: Option<bool>,
}

pub(super) async fn update_thing(State(st): State<ApiState>, call: Call) -> Reply {
    let name = thing_name(&call)?;
    let body: UpdateThingBody = call.json()?;
    check_type_name("thingTypeName", &body.thing_type_name)?;
    let thing_type = match (
        body.remove_thing_type.unwrap_or(false),
        body.thing_type_name,
    ) {
        (true, Some(_)) => {
            return Err(ApiError::InvalidRequest(
                "thingTypeName and removeThingType cannot be given together".into(),
            ));
        }
        (true, None) => Some(None),
        (false, Some(t)) => Some(Some(t)),
        (false, None) => None,
    };
    let payload = body.attribute_payload.unwrap_or_default();
    let merge = payload.merge.unwrap_or(false);
    let attributes = payload.attributes.map(|a| {
        // Merging, an empty value removes the attribute; replacing, it is simply not kept.
        if merge {
            a
        } else {
            a.into_iter().filter(|(_, v)| !v.is_empty()).collect()
        }
    });
    if let Some(a) = &attributes {
        let current = st.registry().get_thing(name).await?;
        let typed = match &thing_type {
            Some(t) => t.is_some(),
            None => current
                .as_ref()
                .is_some_and(|t| t.thing_type_name.is_some()),
        };
        let mut result = if merge {
            current.map(|t| t.attributes).unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        for (k, v) in a {
            if v.is_empty() {
                result.remove(k);
            } else {
                result.insert(k.clone(), v.clone());
            }
        }
        check_attributes(&result, typed)?;
    }
    st.registry()
        .update_thing(name, thing_type, attributes, merge, body.expected_version)
        .await?;
    empty()
}

pub(super) async fn delete_thing(State(st): State<ApiState>, call: Call) -> Reply {
    let name = thing_name(&call)?;
    let expected = call.query_int("expectedVersion", i64::MIN, i64::MAX)?;
    st.registry().delete_thing(name, expected).await?;
    empty()
}

pub(super) async fn list_things(State(st): State<ApiState>, call: Call) -> Reply {
    let page = token_page(&call)?;
    if call.query_bool("usePrefixAttributeValue")? == Some(true) {
        return Err(ApiError::InvalidRequest(
            "usePrefixAttributeValue is not supported by Ferrule".into(),
        ));
    }
    let attribute = match (call.query("attributeName"), call.query("attributeValue")) {
        (Some(n), Some(v)) => Some((n.to_owned(), v.to_owned())),
        (None, None) => None,
        _ => {
            return Err(ApiError::InvalidRequest(
                "attributeName and attributeValue must be given together".into(),
            ));
        }
    };
    let thing_type = call.query("thingTypeName").map(str::to_owned);
    let listed = st
        .registry()
        .list_things(attribute, thing_type, &page)
        .await?;
    let things: Vec<Value> = listed
        .items
        .iter()
        .map(|t| {
            json!({
                "thingName": t.name,
                "thingTypeName": t.thing_type_name,
                "thingArn": st.arns().thing(&t.name),
                "attributes": t.attributes,
                "version": t.version,
            })
        })
        .collect();
    reply(json!({ "things": things, "nextToken": listed.next_marker }))
}

pub(super) async fn attach_thing_principal(State(st): State<ApiState>, call: Call) -> Reply {
    let name = thing_name(&call)?;
    let principal = call.required_header(PRINCIPAL_HEADER)?;
    let exclusive = match call.query("thingPrincipalType") {
        None | Some("NON_EXCLUSIVE_THING") => false,
        Some("EXCLUSIVE_THING") => true,
        Some(other) => {
            return Err(ApiError::InvalidRequest(format!(
                "thingPrincipalType: {other:?} is not valid; expected EXCLUSIVE_THING or NON_EXCLUSIVE_THING"
            )));
        }
    };
    check_target(&st, "principal", principal).await?;
    st.registry()
        .attach_thing_principal(name, principal, exclusive)
        .await?;
    tracing::info!(
        thing = name,
        principal,
        exclusive,
        "principal attached to thing"
    );
    empty()
}

pub(super) async fn detach_thing_principal(State(st): State<ApiState>, call: Call) -> Reply {
    let name = thing_name(&call)?;
    let principal = call.required_header(PRINCIPAL_HEADER)?;
    st.registry()
        .detach_thing_principal(name, principal)
        .await?;
    tracing::info!(thing = name, principal, "principal detached from thing");
    empty()
}

pub(super) async fn list_thing_principals(State(st): State<ApiState>, call: Call) -> Reply {
    let name = thing_name(&call)?;
    let page = st
        .registry()
        .list_thing_principals(name, &token_page(&call)?)
        .await?;
    reply(json!({ "principals": page.items, "nextToken": page.next_marker }))
}

pub(super) async fn list_principal_things(State(st): State<ApiState>, call: Call) -> Reply {
    let principal = call.required_header(PRINCIPAL_HEADER)?;
    let page = st
        .registry()
        .list_principal_things(principal, &token_page(&call)?)
        .await?;
    reply(json!({ "things": page.items, "nextToken": page.next_marker }))
}
