//! The registry's records, enums and paging types. Plain data: the rules live in the
//! operations, not here.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A string that is not one of an enum's AWS spellings, for example `"ENABLED"` given as a
/// [`CaStatus`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {kind}; expected one of {expected}")]
pub struct ParseEnumError {
    /// Which enum, for example "CA certificate status".
    pub kind: &'static str,
    /// The string that was given.
    pub value: String,
    /// The accepted spellings, comma separated.
    pub expected: &'static str,
}

/// Defines an enum with AWS's wire spelling for each variant: `as_str`, `Display` and `FromStr`.
macro_rules! aws_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// AWS's spelling, as the API and the database use it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseEnumError;

            /// Parses AWS's exact spelling (case-sensitive, as AWS is).
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(ParseEnumError {
                        kind: $kind,
                        value: s.to_owned(),
                        expected: concat!($($text, " "),+).trim_ascii_end(),
                    }),
                }
            }
        }
    };
}

aws_enum! {
    /// Whether a registered CA certificate signs devices that may connect and auto-register.
    CaStatus, "CA certificate status" {
        /// Devices signed by it may connect (and auto-register when enabled).
        Active => "ACTIVE",
        /// New auto-registrations under it stop; registered devices keep working.
        Inactive => "INACTIVE",
    }
}

aws_enum! {
    /// Whether unknown device certificates signed by a CA are registered on first connection
    /// (JITR).
    AutoRegistrationStatus, "auto-registration status" {
        /// Register unknown certificates as `PENDING_ACTIVATION` on connect.
        Enable => "ENABLE",
        /// Refuse unknown certificates.
        Disable => "DISABLE",
    }
}

aws_enum! {
    /// How a certificate is matched to an account when a device connects.
    CertificateMode, "certificate mode" {
        /// By the certificate alone (a CA in this mode is registered by one account per
        /// region).
        Default => "DEFAULT",
        /// The device must send SNI; several accounts may register the same CA.
        SniOnly => "SNI_ONLY",
    }
}

aws_enum! {
    /// A device certificate's status. Only `ACTIVE` certificates may connect.
    CertificateStatus, "certificate status" {
        /// May connect.
        Active => "ACTIVE",
        /// Registered, may not connect.
        Inactive => "INACTIVE",
        /// Refused for good: cannot return to `ACTIVE`.
        Revoked => "REVOKED",
        /// Being transferred to another account (internal to AWS).
        PendingTransfer => "PENDING_TRANSFER",
        /// Deprecated AWS status, kept for wire compatibility.
        RegisterInactive => "REGISTER_INACTIVE",
        /// Registered by JITR on first connection, waiting for someone to activate it.
        PendingActivation => "PENDING_ACTIVATION",
    }
}

/// A registered CA certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaRecord {
    /// Lowercase hex SHA-256 of the certificate's DER (the key).
    pub id: String,
    /// The certificate as registered, PEM.
    pub pem: String,
    /// The DER of the certificate's subject name: device certificates' issuer is looked up by
    /// it.
    pub subject_der: Vec<u8>,
    /// `ACTIVE` or `INACTIVE`.
    pub status: CaStatus,
    /// Whether JITR registers unknown device certificates it signed.
    pub auto_registration: AutoRegistrationStatus,
    /// `DEFAULT` or `SNI_ONLY`.
    pub mode: CertificateMode,
    /// The JITP registration config as JSON text (`templateBody`, `roleArn`, `templateName`),
    /// stored as given.
    pub registration_config: Option<String>,
    /// The 12-digit account id that registered it.
    pub owned_by: String,
    /// Registration time, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Last update, milliseconds since the Unix epoch.
    pub modified_ms: i64,
    /// Starts at 1, incremented by each update.
    pub customer_version: i64,
    /// Changes on each update; opaque.
    pub generation_id: String,
    /// Validity start, milliseconds since the Unix epoch.
    pub not_before_ms: i64,
    /// Validity end, milliseconds since the Unix epoch.
    pub not_after_ms: i64,
}

/// A registered device certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRecord {
    /// Lowercase hex SHA-256 of the certificate's DER (the key).
    pub id: String,
    /// The certificate, PEM.
    pub pem: String,
    /// The registered CA that signed it; `None` for certificates registered without a CA.
    pub ca_id: Option<String>,
    /// The DER of the certificate's issuer name.
    pub issuer_der: Vec<u8>,
    /// Its status; only `ACTIVE` may connect.
    pub status: CertificateStatus,
    /// `DEFAULT` or `SNI_ONLY`.
    pub mode: CertificateMode,
    /// The 12-digit account id that owns it.
    pub owned_by: String,
    /// Registration time, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Last update, milliseconds since the Unix epoch.
    pub modified_ms: i64,
    /// Starts at 1, incremented by each status change.
    pub customer_version: i64,
    /// Changes on each update; opaque.
    pub generation_id: String,
    /// Validity start, milliseconds since the Unix epoch.
    pub not_before_ms: i64,
    /// Validity end, milliseconds since the Unix epoch.
    pub not_after_ms: i64,
}

/// An IoT policy, with the document of its default version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    /// The policy name (the key).
    pub name: String,
    /// The id of the default version (AWS sends it as a string: `"1"`).
    pub default_version_id: i64,
    /// The default version's document, JSON text as given.
    pub document: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Last change of the default version, milliseconds since the Unix epoch.
    pub modified_ms: i64,
    /// Changes whenever the default version does; opaque.
    pub generation_id: String,
}

/// One version of an IoT policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersionRecord {
    /// The policy it belongs to.
    pub policy_name: String,
    /// 1, 2, 3, ... in creation order; never reused within one policy.
    pub version_id: i64,
    /// The document, JSON text as given.
    pub document: String,
    /// Whether it is the policy's default version.
    pub is_default: bool,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// A thing (a device's registry entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThingRecord {
    /// The thing name (the key; also the default MQTT client id).
    pub name: String,
    /// A UUID the caller generates at creation.
    pub thing_id: String,
    /// Its thing type, if any.
    pub thing_type_name: Option<String>,
    /// Its attributes.
    pub attributes: BTreeMap<String, String>,
    /// 1 at creation, incremented by each update (for `expectedVersion`).
    /// [`Registry::create_thing`](crate::Registry::create_thing) ignores the value given.
    pub version: i64,
    /// Its billing group, if any.
    pub billing_group_name: Option<String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// A topic rule: a SQL statement over messages and the actions to run on its output.
///
/// The registry stores the payload as opaque text; the control plane writes it and the
/// broker's rules engine reads it, so its format is theirs to agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRecord {
    /// The rule name (the key; `^[a-zA-Z0-9_]+$`, checked by the API).
    pub name: String,
    /// The topic filter of the SQL statement's `FROM` clause, as written there
    /// (`ListTopicRules` returns it as `topicPattern` and filters on it).
    pub topic_pattern: String,
    /// The rule's `TopicRulePayload` as JSON text: `sql`, `description`, `actions`,
    /// `errorAction` and `awsIotSqlVersion` as the API accepted them. Not `ruleDisabled`:
    /// [`RuleRecord::disabled`] is the one place that lives.
    pub payload: String,
    /// Whether the rule is disabled (it then matches no message).
    pub disabled: bool,
    /// Creation time, milliseconds since the Unix epoch. Replacing a rule keeps it.
    pub created_ms: i64,
}

/// Which page of a list to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The `next_marker` of the previous page; `None` for the first page.
    pub marker: Option<String>,
    /// At most this many items (at least 1; the API enforces AWS's upper bounds).
    pub page_size: usize,
    /// Ascending (oldest or A first) or descending order.
    pub ascending: bool,
}

impl PageRequest {
    /// The first page of `page_size` items in ascending order.
    pub fn first(page_size: usize) -> PageRequest {
        PageRequest {
            marker: None,
            page_size,
            ascending: true,
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the order asked for.
    pub items: Vec<T>,
    /// Opaque: pass it back as [`PageRequest::marker`] (with the same order) for the next
    /// page. `None` when this is the last page.
    pub next_marker: Option<String>,
}

/// A committed change, sent to every [`Registry::subscribe`](crate::Registry::subscribe)
/// receiver after the transaction that made it commits.
///
/// Receivers rebuild whatever they cache from the registry (the broker: its trust snapshot,
/// each connection's certificate status and policies); the events say what to reload, not
/// the new state. A receiver that lags behind gets `RecvError::Lagged` and should reload
/// everything.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryChange {
    /// A CA certificate was registered, updated or deleted.
    CaChanged {
        /// The CA's id.
        ca_id: String,
    },
    /// A device certificate was registered or its status changed.
    CertificateChanged {
        /// The certificate's id.
        certificate_id: String,
        /// Its status after the change.
        status: CertificateStatus,
        /// The id of the CA that issued it; `None` for a certificate registered without one.
        ca_id: Option<String>,
    },
    /// A device certificate was deleted.
    CertificateDeleted {
        /// The certificate's id.
        certificate_id: String,
    },
    /// A policy was created, deleted, or got a new default version.
    PolicyChanged {
        /// The policy's name.
        policy_name: String,
    },
    /// A policy was attached to or detached from a target.
    PolicyAttachmentChanged {
        /// The policy's name.
        policy_name: String,
        /// The target ARN (for example a certificate ARN).
        target: String,
    },
    /// A principal was attached to or detached from a thing (deleting a thing detaches all).
    ThingPrincipalChanged {
        /// The thing's name.
        thing_name: String,
        /// The principal ARN.
        principal: String,
    },
    /// A thing was created, updated (type or attributes) or deleted: its attributes are
    /// policy variables (`iot:Connection.Thing.Attributes[...]`).
    ThingChanged {
        /// The thing's name.
        thing_name: String,
    },
    /// A topic rule was created, replaced, enabled, disabled or deleted: whoever runs rules
    /// reloads this one (and finds it gone if it was deleted).
    RuleChanged {
        /// The rule's name.
        rule_name: String,
    },
    /// A Lambda function was created, had its code or configuration updated, or was deleted:
    /// whoever runs functions reloads this one (and finds it gone if it was deleted).
    /// Permission changes are not announced.
    FunctionChanged {
        /// The function's name.
        function_name: String,
    },
}
