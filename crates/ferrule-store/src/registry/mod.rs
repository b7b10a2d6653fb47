//! The device registry: CA and device certificates, IoT policies, things, topic rules, tags,
//! account-level settings, CloudWatch Logs groups, streams and events, IAM roles, users,
//! access keys, inline policies and sessions, and Lambda functions with their code and
//! permissions, on SQLite or PostgreSQL.
//!
//! One [`Registry`] type whatever the backend, chosen when it is opened. Every operation that
//! checks and then writes (the 5-version limit, delete conflicts, exclusive thing principals,
//! racing JITR inserts) runs in one write transaction, and write transactions are serialised
//! on both backends (SQLite: one writer connection and `BEGIN IMMEDIATE`; PostgreSQL: a
//! transaction-scoped advisory lock), so each check sees exactly the state it writes against.
//! Registry writes are control-plane traffic, far below what one writer sustains. Reads run
//! concurrently and never wait for the writer.
//!
//! After each committed mutation a [`RegistryChange`] is broadcast to every
//! [`Registry::subscribe`] receiver, in commit order.
//!
//! Targets and principals are ARN strings, stored as given. Where the registry has to find
//! the ARNs of a certificate it deletes (its policy attachments, things and tags), it
//! recognises them by their suffix, `:cert/{id}`, whatever the region and account.

mod account;
mod cas;
mod certs;
mod db;
mod error;
mod functions;
mod iam;
mod iam_sessions;
mod log_filter;
mod logs;
mod paging;
mod policies;
mod records;
mod rules;
mod tags;
mod things;

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::error::StoreError;
use crate::registry::db::{Db, Tx};

pub use error::RegistryError;
pub use functions::FunctionRecord;
pub use iam::{
    IamAccessKeyRecord, IamEntity, IamRoleRecord, IamUserRecord, MAX_ACCESS_KEYS_PER_USER,
};
pub use iam_sessions::IamSessionRecord;
pub use logs::{
    FilteredLogEvents, LogEventRecord, LogEventsPage, LogEventsQuery, LogFilterQuery,
    LogGroupRecord, LogStreamOrder, LogStreamRecord, NewLogEvent,
};
pub use records::{
    AutoRegistrationStatus, CaRecord, CaStatus, CertRecord, CertificateMode, CertificateStatus,
    Page, PageRequest, ParseEnumError, PolicyRecord, PolicyVersionRecord, RegistryChange,
    RuleRecord, ThingRecord,
};

/// Shorthand for the registry's results.
type Result<T> = std::result::Result<T, RegistryError>;

/// How many changes a slow subscriber may fall behind before it gets `Lagged`.
const CHANGE_FEED_CAPACITY: usize = 1024;

/// The device registry. Cheap to clone: clones share the connection pools and change feed.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Db,
}

impl Registry {
    /// Opens (creating it if missing) the SQLite database file at `path` and brings its schema
    /// up to date.
    ///
    /// The file may be, and by default is, the data dir's `ferrule.db` that
    /// [`BrokerStore`](crate::BrokerStore) uses: the registry has its own tables, and one
    /// migration history covers both. Same settings as the broker store: WAL,
    /// `synchronous=NORMAL` (a crash loses at most the last transactions, never consistency),
    /// a busy timeout, foreign keys on, one writer connection and a few read-only ones.
    pub async fn open_sqlite(path: &Path) -> std::result::Result<Registry, StoreError> {
        let (changes, _) = broadcast::channel(CHANGE_FEED_CAPACITY);
        let db = Db::open_sqlite(path, changes).await?;
        Ok(Registry {
            inner: Arc::new(Inner { db }),
        })
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user[:password]@host[:port]/db`)
    /// and runs the PostgreSQL migrations. Connections are plain TCP (no TLS).
    pub async fn open_postgres(url: &str) -> std::result::Result<Registry, StoreError> {
        let (changes, _) = broadcast::channel(CHANGE_FEED_CAPACITY);
        let db = Db::open_postgres(url, changes).await?;
        Ok(Registry {
            inner: Arc::new(Inner { db }),
        })
    }

    /// A receiver of every change committed from now on, through this registry or any clone of
    /// it. Changes made by other processes sharing the database are not seen.
    pub fn subscribe(&self) -> broadcast::Receiver<RegistryChange> {
        self.inner.db.changes().subscribe()
    }

    /// Waits for running queries to finish and closes every connection. Later calls fail with
    /// [`RegistryError::Backend`].
    pub async fn close(&self) {
        self.inner.db.close().await;
    }

    // ----- account-level -----

    /// The account's registration code, if one was created.
    pub async fn registration_code(&self) -> Result<Option<String>> {
        account::registration_code(&self.inner.db).await
    }

    /// The account's registration code, storing `candidate` as the code if there is none.
    /// Race-safe: concurrent callers all get the same code.
    pub async fn get_or_create_registration_code(&self, candidate: &str) -> Result<String> {
        account::get_or_create_registration_code(&self.inner.db, candidate).await
    }

    /// Deletes the registration code; `false` if there was none (`ResourceNotFound` for the
    /// API).
    pub async fn delete_registration_code(&self) -> Result<bool> {
        account::delete_registration_code(&self.inner.db).await
    }

    /// The value of the account setting `key`, storing `candidate` if it has none. Stable once
    /// set, race-safe. For values created once per server: the `DescribeEndpoint` prefix,
    /// generated admin credentials.
    pub async fn get_or_create_setting(&self, key: &str, candidate: &str) -> Result<String> {
        account::get_or_create_setting(&self.inner.db, key, candidate).await
    }

    // ----- CA certificates -----

    /// Registers a CA certificate as given (`customer_version` 1 and the generation id are the
    /// caller's). [`RegistryError::AlreadyExists`] if its id is registered;
    /// [`RegistryError::LimitExceeded`] if 10 CAs with the same subject are registered.
    pub async fn insert_ca(&self, ca: &CaRecord) -> Result<()> {
        cas::insert_ca(&self.inner.db, ca).await
    }

    /// The CA certificate with this id.
    pub async fn get_ca(&self, id: &str) -> Result<Option<CaRecord>> {
        cas::get_ca(&self.inner.db, id).await
    }

    /// Every registered CA, ordered by creation time then id: the TLS trust snapshot.
    pub async fn all_cas(&self) -> Result<Vec<CaRecord>> {
        cas::all_cas(&self.inner.db).await
    }

    /// The CAs whose subject DER equals `subject_der` (a device certificate's issuer), ordered
    /// by creation time then id.
    pub async fn cas_by_subject(&self, subject_der: &[u8]) -> Result<Vec<CaRecord>> {
        cas::cas_by_subject(&self.inner.db, subject_der).await
    }

    /// One page of CA certificates, ordered by creation time, ties by id.
    pub async fn list_cas(&self, page: &PageRequest) -> Result<Page<CaRecord>> {
        cas::list_cas(&self.inner.db, page).await
    }

    /// Changes what is given of a CA: its status, auto-registration status, and registration
    /// config (`Some(None)` removes it). Bumps `customer_version`, sets `modified_ms` to
    /// `now_ms` and a new generation id, and returns the CA as it now is.
    /// [`RegistryError::NotFound`] if there is no such CA.
    pub async fn update_ca(
        &self,
        id: &str,
        status: Option<CaStatus>,
        auto_registration: Option<AutoRegistrationStatus>,
        registration_config: Option<Option<String>>,
        now_ms: i64,
    ) -> Result<CaRecord> {
        cas::update_ca(
            &self.inner.db,
            id,
            status,
            auto_registration,
            registration_config,
            now_ms,
        )
        .await
    }

    /// Deletes a CA certificate (and its tags). [`RegistryError::NotFound`];
    /// [`RegistryError::CertificateState`] while it is `ACTIVE`;
    /// [`RegistryError::DeleteConflict`] while device certificates registered under it exist.
    pub async fn delete_ca(&self, id: &str) -> Result<()> {
        cas::delete_ca(&self.inner.db, id).await
    }

    // ----- device certificates -----

    /// Registers a device certificate as given. [`RegistryError::AlreadyExists`] if its id is
    /// registered: of N racing inserts of one certificate (JITR), exactly one succeeds.
    /// [`RegistryError::NotFound`] if `ca_id` names no registered CA.
    pub async fn insert_certificate(&self, cert: &CertRecord) -> Result<()> {
        certs::insert_certificate(&self.inner.db, cert).await
    }

    /// The device certificate with this id.
    pub async fn get_certificate(&self, id: &str) -> Result<Option<CertRecord>> {
        certs::get_certificate(&self.inner.db, id).await
    }

    /// Sets a certificate's status and returns it. Setting the status it already has changes
    /// nothing (AWS's `UpdateCertificate` is idempotent); otherwise bumps `customer_version`,
    /// sets `modified_ms` and a new generation id. [`RegistryError::NotFound`];
    /// [`RegistryError::CertificateState`] to move a `REVOKED` certificate to `ACTIVE`.
    /// Which statuses a caller may ask for is the API's business.
    pub async fn update_certificate_status(
        &self,
        id: &str,
        status: CertificateStatus,
        now_ms: i64,
    ) -> Result<CertRecord> {
        certs::update_certificate_status(&self.inner.db, id, status, now_ms).await
    }

    /// One page of device certificates, ordered by creation time, ties by id.
    pub async fn list_certificates(&self, page: &PageRequest) -> Result<Page<CertRecord>> {
        certs::list_certificates(&self.inner.db, page).await
    }

    /// One page of the device certificates registered under the CA `ca_id`, ordered by creation
    /// time, ties by id. An unknown CA has none (no error).
    pub async fn list_certificates_by_ca(
        &self,
        ca_id: &str,
        page: &PageRequest,
    ) -> Result<Page<CertRecord>> {
        certs::list_certificates_by_ca(&self.inner.db, ca_id, page).await
    }

    /// Deletes a device certificate and its tags. [`RegistryError::NotFound`];
    /// [`RegistryError::CertificateState`] while it is `ACTIVE`;
    /// [`RegistryError::DeleteConflict`] while things are attached to it, or policies unless
    /// `force` (which detaches them).
    pub async fn delete_certificate(&self, id: &str, force: bool) -> Result<()> {
        certs::delete_certificate(&self.inner.db, id, force).await
    }

    // ----- policies -----

    /// Creates a policy with version 1, the default, and returns it.
    /// [`RegistryError::AlreadyExists`] if the name is taken. Validating the document is the
    /// caller's business.
    pub async fn create_policy(
        &self,
        name: &str,
        document: &str,
        now_ms: i64,
    ) -> Result<PolicyRecord> {
        policies::create_policy(&self.inner.db, name, document, now_ms).await
    }

    /// The policy with this name, with its default version's document.
    pub async fn get_policy(&self, name: &str) -> Result<Option<PolicyRecord>> {
        policies::get_policy(&self.inner.db, name).await
    }

    /// One page of policies, ordered by name.
    pub async fn list_policies(&self, page: &PageRequest) -> Result<Page<PolicyRecord>> {
        policies::list_policies(&self.inner.db, page).await
    }

    /// Deletes a policy with its versions and tags. [`RegistryError::NotFound`];
    /// [`RegistryError::DeleteConflict`] while it is attached to a target or has versions other
    /// than the default.
    pub async fn delete_policy(&self, name: &str) -> Result<()> {
        policies::delete_policy(&self.inner.db, name).await
    }

    /// Adds a version to a policy (ids count up from the highest ever created, never reused),
    /// making it the default if asked, and returns it. [`RegistryError::NotFound`];
    /// [`RegistryError::VersionsLimitExceeded`] when the policy has 5 versions.
    pub async fn create_policy_version(
        &self,
        name: &str,
        document: &str,
        set_as_default: bool,
        now_ms: i64,
    ) -> Result<PolicyVersionRecord> {
        policies::create_policy_version(&self.inner.db, name, document, set_as_default, now_ms)
            .await
    }

    /// One version of a policy; `None` if the policy or the version does not exist.
    pub async fn get_policy_version(
        &self,
        name: &str,
        version_id: i64,
    ) -> Result<Option<PolicyVersionRecord>> {
        policies::get_policy_version(&self.inner.db, name, version_id).await
    }

    /// Every version of a policy, by version id. [`RegistryError::NotFound`] if there is no
    /// such policy.
    pub async fn list_policy_versions(&self, name: &str) -> Result<Vec<PolicyVersionRecord>> {
        policies::list_policy_versions(&self.inner.db, name).await
    }

    /// Makes a version the policy's default (sets `modified_ms` and a new generation id).
    /// [`RegistryError::NotFound`] if the policy or the version does not exist.
    pub async fn set_default_policy_version(
        &self,
        name: &str,
        version_id: i64,
        now_ms: i64,
    ) -> Result<()> {
        policies::set_default_policy_version(&self.inner.db, name, version_id, now_ms).await
    }

    /// Deletes a non-default version. [`RegistryError::NotFound`];
    /// [`RegistryError::DeleteConflict`] for the default version.
    pub async fn delete_policy_version(&self, name: &str, version_id: i64) -> Result<()> {
        policies::delete_policy_version(&self.inner.db, name, version_id).await
    }

    /// Attaches a policy to a target ARN; attaching it again changes nothing.
    /// [`RegistryError::NotFound`] if there is no such policy;
    /// [`RegistryError::LimitExceeded`] if the target already has 10 other policies.
    pub async fn attach_policy(&self, name: &str, target: &str) -> Result<()> {
        policies::attach_policy(&self.inner.db, name, target).await
    }

    /// Detaches a policy from a target; detaching one that is not attached changes nothing.
    /// [`RegistryError::NotFound`] if there is no such policy.
    pub async fn detach_policy(&self, name: &str, target: &str) -> Result<()> {
        policies::detach_policy(&self.inner.db, name, target).await
    }

    /// One page of the policies attached to a target, ordered by name.
    pub async fn list_attached_policies(
        &self,
        target: &str,
        page: &PageRequest,
    ) -> Result<Page<PolicyRecord>> {
        policies::list_attached_policies(&self.inner.db, target, page).await
    }

    /// One page of the targets a policy is attached to, ordered by target.
    /// [`RegistryError::NotFound`] if there is no such policy.
    pub async fn list_policy_targets(
        &self,
        name: &str,
        page: &PageRequest,
    ) -> Result<Page<String>> {
        policies::list_policy_targets(&self.inner.db, name, page).await
    }

    /// Every policy attached to a target with its default document, ordered by name: what the
    /// broker evaluates for a connection.
    pub async fn policies_for_target(&self, target: &str) -> Result<Vec<PolicyRecord>> {
        policies::policies_for_target(&self.inner.db, target).await
    }

    // ----- things -----

    /// Creates a thing (version 1, whatever `thing.version` says) and returns it. Creating it
    /// again with the same type, attributes and billing group returns the existing thing
    /// (AWS's `CreateThing` is idempotent); with different ones,
    /// [`RegistryError::AlreadyExists`].
    pub async fn create_thing(&self, thing: &ThingRecord) -> Result<ThingRecord> {
        things::create_thing(&self.inner.db, thing).await
    }

    /// The thing with this name.
    pub async fn get_thing(&self, name: &str) -> Result<Option<ThingRecord>> {
        things::get_thing(&self.inner.db, name).await
    }

    /// Updates a thing and returns it with its version incremented. `thing_type_name`:
    /// `Some(None)` removes the type. `attributes` with `merge`: each one is set, and an empty
    /// value removes the attribute; without `merge`: they replace all attributes.
    /// [`RegistryError::NotFound`]; [`RegistryError::VersionConflict`] if `expected_version` is
    /// not the current version.
    pub async fn update_thing(
        &self,
        name: &str,
        thing_type_name: Option<Option<String>>,
        attributes: Option<BTreeMap<String, String>>,
        merge: bool,
        expected_version: Option<i64>,
    ) -> Result<ThingRecord> {
        things::update_thing(
            &self.inner.db,
            name,
            thing_type_name,
            attributes,
            merge,
            expected_version,
        )
        .await
    }

    /// Deletes a thing, detaching its principals and removing its tags. Deleting a thing that
    /// does not exist is not an error (as in AWS). [`RegistryError::VersionConflict`] if
    /// `expected_version` is not the current version.
    pub async fn delete_thing(&self, name: &str, expected_version: Option<i64>) -> Result<()> {
        things::delete_thing(&self.inner.db, name, expected_version).await
    }

    /// One page of things, ordered by name, optionally only those with the attribute
    /// `(name, value)` and/or of the given type.
    pub async fn list_things(
        &self,
        attribute: Option<(String, String)>,
        thing_type_name: Option<String>,
        page: &PageRequest,
    ) -> Result<Page<ThingRecord>> {
        things::list_things(&self.inner.db, attribute, thing_type_name, page).await
    }

    /// Attaches a principal ARN to a thing; attaching it again changes nothing (except that
    /// `exclusive` may make an existing attachment exclusive). [`RegistryError::NotFound`] if
    /// there is no such thing; [`RegistryError::InvalidRequest`] if `exclusive` and the
    /// principal is attached to another thing, or if it is attached exclusively to another
    /// thing.
    pub async fn attach_thing_principal(
        &self,
        thing: &str,
        principal: &str,
        exclusive: bool,
    ) -> Result<()> {
        things::attach_thing_principal(&self.inner.db, thing, principal, exclusive).await
    }

    /// Detaches a principal from a thing; detaching one that is not attached changes nothing.
    /// [`RegistryError::NotFound`] if there is no such thing.
    pub async fn detach_thing_principal(&self, thing: &str, principal: &str) -> Result<()> {
        things::detach_thing_principal(&self.inner.db, thing, principal).await
    }

    /// One page of the principals attached to a thing, ordered by principal.
    /// [`RegistryError::NotFound`] if there is no such thing.
    pub async fn list_thing_principals(
        &self,
        thing: &str,
        page: &PageRequest,
    ) -> Result<Page<String>> {
        things::list_thing_principals(&self.inner.db, thing, page).await
    }

    /// One page of the names of the things a principal is attached to, ordered by name.
    pub async fn list_principal_things(
        &self,
        principal: &str,
        page: &PageRequest,
    ) -> Result<Page<String>> {
        things::list_principal_things(&self.inner.db, principal, page).await
    }

    // ----- topic rules -----

    /// Creates a topic rule as given. [`RegistryError::AlreadyExists`] if the name is taken.
    /// Validating the name, the SQL and the payload is the caller's business.
    pub async fn create_rule(&self, rule: &RuleRecord) -> Result<()> {
        rules::create_rule(&self.inner.db, rule).await
    }

    /// The topic rule with this name (case-sensitive).
    pub async fn get_rule(&self, name: &str) -> Result<Option<RuleRecord>> {
        rules::get_rule(&self.inner.db, name).await
    }

    /// One page of topic rules, ordered by name, optionally only those whose topic pattern is
    /// exactly `topic_pattern` and/or whose `disabled` flag is the one given.
    pub async fn list_rules(
        &self,
        topic_pattern: Option<&str>,
        disabled: Option<bool>,
        page: &PageRequest,
    ) -> Result<Page<RuleRecord>> {
        rules::list_rules(&self.inner.db, topic_pattern, disabled, page).await
    }

    /// Replaces a topic rule's topic pattern, payload and `disabled` flag with `rule`'s, keeps
    /// its creation time (whatever `rule.created_ms` says), and returns it as it now is.
    /// [`RegistryError::NotFound`] if there is no such rule.
    pub async fn replace_rule(&self, rule: &RuleRecord) -> Result<RuleRecord> {
        rules::replace_rule(&self.inner.db, rule).await
    }

    /// Disables (`true`) or enables (`false`) a topic rule; asking for the state it is in
    /// changes nothing and announces nothing. [`RegistryError::NotFound`] if there is no such
    /// rule.
    pub async fn set_rule_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        rules::set_rule_disabled(&self.inner.db, name, disabled).await
    }

    /// Deletes a topic rule and its tags (those of any ARN ending in `:rule/{name}`).
    /// [`RegistryError::NotFound`] if there is no such rule.
    pub async fn delete_rule(&self, name: &str) -> Result<()> {
        rules::delete_rule(&self.inner.db, name).await
    }

    // ----- CloudWatch Logs -----

    /// Creates a log group (no retention). [`RegistryError::AlreadyExists`] if the name is
    /// taken. Validating the name is the caller's business.
    pub async fn create_log_group(&self, name: &str, now_ms: i64) -> Result<()> {
        logs::create_log_group(&self.inner.db, name, now_ms).await
    }

    /// Deletes a log group with its streams and their events. [`RegistryError::NotFound`] if
    /// there is no such group.
    pub async fn delete_log_group(&self, name: &str) -> Result<()> {
        logs::delete_log_group(&self.inner.db, name).await
    }

    /// Sets (`Some`) or removes (`None`) a log group's retention in days; which values are
    /// allowed is the caller's business. [`RegistryError::NotFound`] if there is no such group.
    /// The retention is recorded, not enforced: events are kept until the group is deleted.
    pub async fn put_retention_policy(&self, name: &str, days: Option<i64>) -> Result<()> {
        logs::put_retention_policy(&self.inner.db, name, days).await
    }

    /// One page of log groups, ordered by name, optionally only those whose name starts with
    /// `prefix` (case-sensitive).
    pub async fn describe_log_groups(
        &self,
        prefix: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<LogGroupRecord>> {
        logs::describe_log_groups(&self.inner.db, prefix, page).await
    }

    /// Creates a log stream in a group. [`RegistryError::NotFound`] if there is no such group;
    /// [`RegistryError::AlreadyExists`] if the group has a stream of this name.
    pub async fn create_log_stream(&self, group: &str, name: &str, now_ms: i64) -> Result<()> {
        logs::create_log_stream(&self.inner.db, group, name, now_ms).await
    }

    /// One page of a group's log streams in `order` (`page.ascending` false: descending),
    /// optionally only those whose name starts with `prefix`. [`RegistryError::NotFound`] if
    /// there is no such group; [`RegistryError::InvalidRequest`] for a prefix with
    /// [`LogStreamOrder::LastEventTime`], as on AWS.
    pub async fn describe_log_streams(
        &self,
        group: &str,
        prefix: Option<&str>,
        order: LogStreamOrder,
        page: &PageRequest,
    ) -> Result<Page<LogStreamRecord>> {
        logs::describe_log_streams(&self.inner.db, group, prefix, order, page).await
    }

    /// Appends events to a stream, all ingested at `now_ms`, in one transaction; creates
    /// nothing. [`RegistryError::InvalidRequest`] for an empty batch or one not in
    /// chronological order (nothing is stored); [`RegistryError::NotFound`] if the group or
    /// the stream does not exist.
    pub async fn put_log_events(
        &self,
        group: &str,
        stream: &str,
        events: &[NewLogEvent],
        now_ms: i64,
    ) -> Result<()> {
        logs::put_log_events(&self.inner.db, group, stream, events, now_ms).await
    }

    /// One page of a stream's events (AWS's `GetLogEvents`): from the head or the tail, or
    /// onwards from a token in the token's direction. [`RegistryError::NotFound`] if the group
    /// or the stream does not exist; [`RegistryError::InvalidRequest`] for a malformed token.
    pub async fn get_log_events(
        &self,
        group: &str,
        stream: &str,
        query: &LogEventsQuery,
    ) -> Result<LogEventsPage> {
        logs::get_log_events(&self.inner.db, group, stream, query).await
    }

    /// The events of a group's streams that match a filter pattern, oldest first (AWS's
    /// `FilterLogEvents`). [`RegistryError::NotFound`] if there is no such group;
    /// [`RegistryError::InvalidRequest`] for a pattern outside the term syntax, a malformed
    /// token, or both stream names and a prefix.
    pub async fn filter_log_events(
        &self,
        group: &str,
        query: &LogFilterQuery,
    ) -> Result<FilteredLogEvents> {
        logs::filter_log_events(&self.inner.db, group, query).await
    }

    // ----- IAM -----

    /// Creates an IAM role as given. [`RegistryError::AlreadyExists`] (kind "Role", the
    /// existing name) if a role has this name, ignoring case.
    pub async fn create_iam_role(&self, role: &IamRoleRecord) -> Result<()> {
        iam::create_role(&self.inner.db, role).await
    }

    /// The IAM role with this name, ignoring case.
    pub async fn get_iam_role(&self, name: &str) -> Result<Option<IamRoleRecord>> {
        iam::get_role(&self.inner.db, name).await
    }

    /// One page of IAM roles whose path starts with `path_prefix`, ordered by name.
    pub async fn list_iam_roles(
        &self,
        path_prefix: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<IamRoleRecord>> {
        iam::list_roles(&self.inner.db, path_prefix, page).await
    }

    /// Deletes an IAM role. [`RegistryError::NotFound`] (kind "Role");
    /// [`RegistryError::DeleteConflict`] while it has inline policies.
    pub async fn delete_iam_role(&self, name: &str) -> Result<()> {
        iam::delete_role(&self.inner.db, name).await
    }

    /// Creates an IAM user as given. [`RegistryError::AlreadyExists`] (kind "User") if a user
    /// has this name, ignoring case.
    pub async fn create_iam_user(&self, user: &IamUserRecord) -> Result<()> {
        iam::create_user(&self.inner.db, user).await
    }

    /// The IAM user with this name, ignoring case.
    pub async fn get_iam_user(&self, name: &str) -> Result<Option<IamUserRecord>> {
        iam::get_user(&self.inner.db, name).await
    }

    /// Deletes an IAM user. [`RegistryError::NotFound`] (kind "User");
    /// [`RegistryError::DeleteConflict`] while it has access keys or inline policies.
    pub async fn delete_iam_user(&self, name: &str) -> Result<()> {
        iam::delete_user(&self.inner.db, name).await
    }

    /// Stores a new access key of the user `access_key.user_name`. [`RegistryError::NotFound`]
    /// (kind "User"); [`RegistryError::LimitExceeded`] if the user has
    /// [`MAX_ACCESS_KEYS_PER_USER`] keys; [`RegistryError::AlreadyExists`] if the id is taken.
    pub async fn create_iam_access_key(&self, access_key: &IamAccessKeyRecord) -> Result<()> {
        iam::create_access_key(&self.inner.db, access_key).await
    }

    /// The access key with this id, whoever owns it: what SigV4 verification will look up.
    pub async fn get_iam_access_key(
        &self,
        access_key_id: &str,
    ) -> Result<Option<IamAccessKeyRecord>> {
        iam::get_access_key(&self.inner.db, access_key_id).await
    }

    /// The user's access keys, oldest first. [`RegistryError::NotFound`] (kind "User").
    pub async fn list_iam_access_keys(&self, user: &str) -> Result<Vec<IamAccessKeyRecord>> {
        iam::list_access_keys(&self.inner.db, user).await
    }

    /// Deletes one of the user's access keys. [`RegistryError::NotFound`] (kind "User", or
    /// "Access key" if the user has no key with this id).
    pub async fn delete_iam_access_key(&self, user: &str, access_key_id: &str) -> Result<()> {
        iam::delete_access_key(&self.inner.db, user, access_key_id).await
    }

    /// Creates or replaces the inline policy `policy_name` of a role or user.
    /// [`RegistryError::NotFound`] (kind "Role" or "User") if the entity does not exist.
    pub async fn put_iam_inline_policy(
        &self,
        entity: IamEntity,
        name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<()> {
        iam::put_inline_policy(&self.inner.db, entity, name, policy_name, document).await
    }

    /// The document of an inline policy; `None` if the entity has no such policy,
    /// [`RegistryError::NotFound`] if the entity does not exist.
    pub async fn get_iam_inline_policy(
        &self,
        entity: IamEntity,
        name: &str,
        policy_name: &str,
    ) -> Result<Option<String>> {
        iam::get_inline_policy(&self.inner.db, entity, name, policy_name).await
    }

    /// The names of the entity's inline policies, sorted. [`RegistryError::NotFound`] if the
    /// entity does not exist.
    pub async fn list_iam_inline_policies(
        &self,
        entity: IamEntity,
        name: &str,
    ) -> Result<Vec<String>> {
        iam::list_inline_policies(&self.inner.db, entity, name).await
    }

    /// Deletes an inline policy. [`RegistryError::NotFound`] (kind "Role"/"User", or
    /// "Role policy"/"User policy").
    pub async fn delete_iam_inline_policy(
        &self,
        entity: IamEntity,
        name: &str,
        policy_name: &str,
    ) -> Result<()> {
        iam::delete_inline_policy(&self.inner.db, entity, name, policy_name).await
    }

    /// Stores temporary credentials issued for a role. [`RegistryError::AlreadyExists`]
    /// (kind "Session") if the access key id is taken.
    pub async fn create_iam_session(&self, s: &IamSessionRecord) -> Result<()> {
        iam_sessions::create_session(&self.inner.db, s).await
    }

    /// The session with this access key id, as stored: expired or not (comparing
    /// `expires_ms` with the time is the caller's business).
    pub async fn get_iam_session(&self, access_key_id: &str) -> Result<Option<IamSessionRecord>> {
        iam_sessions::get_session(&self.inner.db, access_key_id).await
    }

    /// Deletes the sessions with `expires_ms <= now_ms`; returns how many.
    pub async fn delete_expired_iam_sessions(&self, now_ms: i64) -> Result<u64> {
        iam_sessions::delete_expired_sessions(&self.inner.db, now_ms).await
    }

    // ----- Lambda functions -----

    /// Creates a function with its code zip. The stored `code_size` is the zip's length;
    /// everything else is stored as given (`code_sha256` is the caller's to compute).
    /// [`RegistryError::AlreadyExists`] (kind "Function") if the name is taken.
    pub async fn create_function(&self, f: &FunctionRecord, code_zip: &[u8]) -> Result<()> {
        functions::create_function(&self.inner.db, f, code_zip).await
    }

    /// The function with this name (case-sensitive), without its code.
    pub async fn get_function(&self, name: &str) -> Result<Option<FunctionRecord>> {
        functions::get_function(&self.inner.db, name).await
    }

    /// The function's stored code zip.
    pub async fn get_function_code(&self, name: &str) -> Result<Option<Vec<u8>>> {
        functions::get_function_code(&self.inner.db, name).await
    }

    /// One page of functions, ordered by name.
    pub async fn list_functions(&self, page: &PageRequest) -> Result<Page<FunctionRecord>> {
        functions::list_functions(&self.inner.db, page).await
    }

    /// Replaces a function's code: sets `code_sha256`, `code_size` (the zip's length),
    /// `revision_id` and `last_modified_ms`, and returns the function as it now is.
    /// [`RegistryError::NotFound`] (kind "Function").
    pub async fn update_function_code(
        &self,
        name: &str,
        code_zip: &[u8],
        code_sha256: &str,
        revision_id: &str,
        now_ms: i64,
    ) -> Result<FunctionRecord> {
        functions::update_function_code(
            &self.inner.db,
            name,
            code_zip,
            code_sha256,
            revision_id,
            now_ms,
        )
        .await
    }

    /// Replaces the runtime, handler, role, description, timeout, memory size, environment,
    /// `revision_id` and `last_modified_ms` of the function `f.name` with `f`'s; keeps its
    /// code (and `code_sha256`, `code_size`) and `created_ms`. Returns the function as it now
    /// is. [`RegistryError::NotFound`] (kind "Function").
    pub async fn update_function_configuration(
        &self,
        f: &FunctionRecord,
    ) -> Result<FunctionRecord> {
        functions::update_function_configuration(&self.inner.db, f).await
    }

    /// Deletes a function with its code and permissions. [`RegistryError::NotFound`] (kind
    /// "Function").
    pub async fn delete_function(&self, name: &str) -> Result<()> {
        functions::delete_function(&self.inner.db, name).await
    }

    /// Adds a resource-policy statement (JSON text, stored as given) under `sid`.
    /// [`RegistryError::NotFound`] (kind "Function"); [`RegistryError::AlreadyExists`] (kind
    /// "Permission") if the function has a statement with this sid.
    pub async fn add_function_permission(
        &self,
        name: &str,
        sid: &str,
        statement_json: &str,
    ) -> Result<()> {
        functions::add_function_permission(&self.inner.db, name, sid, statement_json).await
    }

    /// Removes the statement `sid`. [`RegistryError::NotFound`] (kind "Function" if there is
    /// no such function, "Permission" if it has no such statement).
    pub async fn remove_function_permission(&self, name: &str, sid: &str) -> Result<()> {
        functions::remove_function_permission(&self.inner.db, name, sid).await
    }

    /// The function's statements as `(sid, statement JSON)`, in the order they were added
    /// (empty if it has none). [`RegistryError::NotFound`] (kind "Function").
    pub async fn list_function_permissions(&self, name: &str) -> Result<Vec<(String, String)>> {
        functions::list_function_permissions(&self.inner.db, name).await
    }

    // ----- tags -----

    /// Sets tags on a resource ARN, replacing the values of keys it already has.
    /// [`RegistryError::LimitExceeded`] if the resource would have more than 50 tags. Whether
    /// the resource exists is the caller's business.
    pub async fn tag_resource(&self, arn: &str, tags: &[(String, String)]) -> Result<()> {
        tags::tag_resource(&self.inner.db, arn, tags).await
    }

    /// Removes tags (by key) from a resource ARN; absent keys are ignored.
    pub async fn untag_resource(&self, arn: &str, keys: &[String]) -> Result<()> {
        tags::untag_resource(&self.inner.db, arn, keys).await
    }

    /// A resource's tags, ordered by key.
    pub async fn list_tags(&self, arn: &str) -> Result<Vec<(String, String)>> {
        tags::list_tags(&self.inner.db, arn).await
    }
}

/// Parses a stored enum, reporting a value no Ferrule writes as corruption.
fn parse_column<T: FromStr>(
    tx: &Tx<'_>,
    value: &str,
    column: impl FnOnce() -> String,
) -> Result<T> {
    value.parse().map_err(|_| {
        tx.corrupt(format!(
            "{} is {value:?}, not a value Ferrule writes",
            column()
        ))
    })
}
