//! The function service: runs the functions stored in the registry.
//!
//! A function is deployed on its first invocation (also after a restart): its record and code
//! zip are read from the registry, the zip is unpacked under the code root, temporary
//! credentials for its execution role are stored as an IAM session, and the result is deployed
//! to a [`FunctionRuntime`]. Concurrent first invocations wait for one deployment.
//!
//! Deployments follow the registry: every invocation reads the function's record (one indexed
//! read) and redeploys when its `revision_id` changed, so the invocation after an update runs
//! the new code even when the update was made by another node sharing the database (whose
//! changes this process's change feed does not carry). The change feed's `FunctionChanged` stops
//! a deleted function's workers at once instead of at its next invocation. A deployment whose
//! credentials have less than a quarter of their lifetime left is redeployed with fresh ones.
//!
//! Every invocation's log lines are stored in `/aws/lambda/<name>`, in the worker's stream;
//! deployment failures, asynchronous retries and asynchronous invocations that failed for good
//! are written there too (deployment failures to a stream of the service's own).
//!
//! Asynchronous invocations (`Event`) are admitted while fewer than `async_queue_capacity` are
//! queued or running, run at once (each function's concurrency bounds how many run), and a
//! failed attempt is retried after each of `retry_delays` in turn.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrule_store::{FunctionRecord, Registry, RegistryChange, RegistryError};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, broadcast, watch};
use tokio::task::JoinHandle;

use crate::code::{self, CodeDir, UnpackError};
use crate::deploy::{self, RuntimeKind};
use crate::session::{self, Credentials};
use crate::{ConfigError, FunctionRuntime, Invocation, InvokeError, RequestId, cloudwatch, ids};

/// How long [`FunctionService::shutdown`] waits for asynchronous invocations to write their
/// last logs once the runtime has stopped.
const ASYNC_DRAIN: Duration = Duration::from_secs(5);
/// The longest pause between two sweeps of expired sessions.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// How the service runs functions.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// The region functions run in (`AWS_REGION`, and their ARNs).
    pub region: String,
    /// The account functions belong to (their ARNs).
    pub account_id: String,
    /// Given to functions as `AWS_ENDPOINT_URL`: the control plane, so that the AWS SDKs in a
    /// function talk to Ferrule.
    pub endpoint_url: String,
    /// Where unpacked code lives (`DATA_DIR/functions`); the service owns everything in it.
    pub code_root: PathBuf,
    /// How many invocations of one function may run at once (default 4).
    pub concurrency: usize,
    /// How long a function's role credentials are valid (default 1 hour).
    pub session_ttl: Duration,
    /// How many asynchronous invocations may be queued or running, all functions together
    /// (default 10,000).
    pub async_queue_capacity: usize,
    /// The pauses before each retry of a failed asynchronous invocation; Lambda retries twice
    /// (default 1 s, then 2 s).
    pub retry_delays: Vec<Duration>,
}

impl ServiceConfig {
    /// The defaults for everything but the region, account, endpoint and code root.
    pub fn new(
        region: impl Into<String>,
        account_id: impl Into<String>,
        endpoint_url: impl Into<String>,
        code_root: impl Into<PathBuf>,
    ) -> Self {
        Self {
            region: region.into(),
            account_id: account_id.into(),
            endpoint_url: endpoint_url.into(),
            code_root: code_root.into(),
            concurrency: 4,
            session_ttl: Duration::from_secs(3600),
            async_queue_capacity: 10_000,
            retry_delays: vec![Duration::from_secs(1), Duration::from_secs(2)],
        }
    }
}

/// Why an invocation could not be run. Failures of the function itself (it raised, timed out,
/// crashed) are in [`Invocation::result`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// No such function (or not a valid function name or ARN); Lambda's
    /// `ResourceNotFoundException`.
    #[error("Function not found: {0}")]
    NotFound(String),
    /// Too many asynchronous invocations are queued; Lambda's `TooManyRequestsException`.
    #[error("too many asynchronous invocations are queued; retry later")]
    QueueFull,
    /// The function's runtime is not one the service runs; Lambda's
    /// `InvalidRuntimeException`.
    #[error(
        "runtime {0:?} is not supported: use python3.N, provided, provided.al2 or provided.al2023"
    )]
    UnsupportedRuntime(String),
    /// The function's code zip cannot be deployed (corrupt, unsafe paths, too large, no
    /// `bootstrap`); Lambda's `InvalidZipFileException`. Fix the code and update it.
    #[error("the function's code cannot be deployed: {0}")]
    BadCode(String),
    /// The registry failed.
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    /// The host could not start a worker (no `python3`, a `bootstrap` that cannot execute).
    #[error("cannot start a worker for {function}: {source}")]
    Spawn {
        /// The function.
        function: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The host could not write the unpacked code (disk full, permissions of the code root).
    #[error("cannot unpack the code of {function} on the host: {source}")]
    Unpack {
        /// The function.
        function: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The function's configuration cannot run.
    #[error("the configuration of {function} cannot run: {source}")]
    Config {
        /// The function.
        function: String,
        /// Which field is wrong.
        source: ConfigError,
    },
    /// The service is shutting down.
    #[error("the function service is shutting down")]
    ShuttingDown,
}

impl ServiceError {
    /// Failures of the function's deployment, which its log group should show.
    fn is_deploy_failure(&self) -> bool {
        matches!(
            self,
            Self::UnsupportedRuntime(_)
                | Self::BadCode(_)
                | Self::Spawn { .. }
                | Self::Unpack { .. }
                | Self::Config { .. }
        )
    }
}

/// The name in a function name or ARN: `NAME`, `ACCOUNT:function:NAME` or
/// `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME`, each optionally followed by
/// `:$LATEST` (the only version there is). `None` if it is none of these, or the name is not a
/// valid function name (letters, digits, `-`, `_`, at most 64).
pub fn function_name(name_or_arn: &str) -> Option<&str> {
    let unqualified = name_or_arn.strip_suffix(":$LATEST").unwrap_or(name_or_arn);
    let name = if let Some(rest) = unqualified.strip_prefix("arn:") {
        let mut parts = rest.splitn(6, ':');
        let (partition, service, region, account, kind, name) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        let valid = !partition.is_empty()
            && service == "lambda"
            && !region.is_empty()
            && is_account(account)
            && kind == "function";
        valid.then_some(name)?
    } else if let Some((account, rest)) = unqualified.split_once(':') {
        is_account(account).then_some(())?;
        rest.strip_prefix("function:")?
    } else {
        unqualified
    };
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then_some(name)
}

fn is_account(account: &str) -> bool {
    account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Runs the functions stored in the registry. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct FunctionService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FunctionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionService")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    registry: Registry,
    config: ServiceConfig,
    runtime: FunctionRuntime,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// One permit per queued or running asynchronous invocation.
    async_permits: Arc<Semaphore>,
    async_capacity: u32,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Where the service's own lines about a function go (deployment failures).
    service_stream: String,
}

/// One function's deployment state.
#[derive(Default)]
struct Slot {
    /// Held while checking and deploying, so that concurrent invocations deploy once.
    state: tokio::sync::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    current: Option<Arc<Deployment>>,
    /// Unpacked code still in use by this or older deployments, reused for the same code.
    code_dirs: Vec<Weak<CodeDir>>,
    /// The function was found deleted and this slot left the map: start again.
    removed: bool,
}

/// What is deployed. Invocations hold it, so that the code stays until they finish.
struct Deployment {
    /// The record's revision it runs.
    revision_id: String,
    /// When its credentials expire, epoch milliseconds.
    expires_ms: i64,
    _code: Arc<CodeDir>,
}

impl FunctionService {
    /// Starts the service: it follows the registry's change feed and sweeps expired sessions
    /// in the background. Nothing is deployed until invoked. Must be called within a tokio
    /// runtime.
    pub fn start(registry: Registry, config: ServiceConfig) -> FunctionService {
        let changes = registry.subscribe();
        let async_capacity = u32::try_from(config.async_queue_capacity).unwrap_or(u32::MAX);
        let sweep_every = config
            .session_ttl
            .clamp(Duration::from_secs(1), MAX_SWEEP_INTERVAL);
        let inner = Arc::new(Inner {
            registry,
            config,
            runtime: FunctionRuntime::new(),
            slots: Mutex::new(HashMap::new()),
            async_permits: Arc::new(Semaphore::new(async_capacity as usize)),
            async_capacity,
            shutdown: watch::Sender::new(false),
            tasks: Mutex::new(Vec::new()),
            service_stream: ids::log_stream_name(deploy::VERSION, SystemTime::now()),
        });
        let listener = tokio::spawn(follow_changes(Arc::downgrade(&inner), changes));
        let sweeper = tokio::spawn(sweep_sessions(Arc::downgrade(&inner), sweep_every));
        lock(&inner.tasks).extend([listener, sweeper]);
        FunctionService { inner }
    }

    /// Invokes a function and waits for its result (`RequestResponse`): deploys it if needed,
    /// runs it, stores its log lines, and returns the invocation.
    pub async fn invoke(
        &self,
        name_or_arn: &str,
        event: Value,
    ) -> Result<Invocation, ServiceError> {
        let name = function_name(name_or_arn)
            .ok_or_else(|| ServiceError::NotFound(name_or_arn.to_owned()))?;
        self.inner.run(name, event, RequestId::generate()).await
    }

    /// Queues an asynchronous invocation (`Event`) and returns its request id at once: checks
    /// only that the function exists and that the queue has room.
    pub async fn invoke_async(
        &self,
        name_or_arn: &str,
        event: Value,
    ) -> Result<RequestId, ServiceError> {
        let name = function_name(name_or_arn)
            .ok_or_else(|| ServiceError::NotFound(name_or_arn.to_owned()))?;
        if self.inner.is_shutting_down() {
            return Err(ServiceError::ShuttingDown);
        }
        if self.inner.registry.get_function(name).await?.is_none() {
            return Err(ServiceError::NotFound(name.to_owned()));
        }
        let permit = match Arc::clone(&self.inner.async_permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => return Err(ServiceError::QueueFull),
            Err(TryAcquireError::Closed) => return Err(ServiceError::ShuttingDown),
        };
        let request_id = RequestId::generate();
        let inner = Arc::clone(&self.inner);
        let (name, id) = (name.to_owned(), request_id.clone());
        tokio::spawn(async move { inner.run_async(&name, event, id, permit).await });
        Ok(request_id)
    }

    /// Stops: refuses new invocations, abandons asynchronous retries, waits for running
    /// invocations (each up to its timeout) and stops every worker. The registry stays open.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.shutdown.send_replace(true);
        for task in lock(&inner.tasks).drain(..) {
            task.abort();
        }
        inner.runtime.shutdown().await;
        // Asynchronous invocations have returned from the runtime; let them store their logs.
        let drained = tokio::time::timeout(
            ASYNC_DRAIN,
            inner.async_permits.acquire_many(inner.async_capacity),
        )
        .await;
        inner.async_permits.close();
        drop(drained);
        let slots: Vec<_> = lock(&inner.slots).drain().map(|(_, slot)| slot).collect();
        for slot in slots {
            let mut state = slot.state.lock().await;
            state.current = None;
            state.removed = true;
        }
    }
}

impl Inner {
    fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// One invocation: deploy if needed, run, store the logs.
    async fn run(
        &self,
        name: &str,
        event: Value,
        request_id: RequestId,
    ) -> Result<Invocation, ServiceError> {
        let deployment = match self.deployment(name).await {
            Ok(deployment) => deployment,
            Err(e) => {
                if e.is_deploy_failure() {
                    self.service_log(name, format!("[ERROR] Deploying {name} failed: {e}"))
                        .await;
                }
                return Err(e);
            }
        };
        let result = self.runtime.invoke(name, event, request_id).await;
        drop(deployment);
        match result {
            Ok(invocation) => {
                cloudwatch::write(
                    &self.registry,
                    name,
                    &invocation.log_stream_name,
                    &invocation.log_lines,
                )
                .await;
                Ok(invocation)
            }
            Err(InvokeError::Spawn { function, source }) => {
                let e = ServiceError::Spawn { function, source };
                self.service_log(name, format!("[ERROR] Starting {name} failed: {e}"))
                    .await;
                Err(e)
            }
            Err(InvokeError::NotFound(_)) => Err(ServiceError::NotFound(name.to_owned())),
            Err(InvokeError::ShuttingDown(_)) => Err(ServiceError::ShuttingDown),
        }
    }

    /// An asynchronous invocation with its retries; holds its queue permit throughout.
    async fn run_async(
        &self,
        name: &str,
        event: Value,
        request_id: RequestId,
        _permit: OwnedSemaphorePermit,
    ) {
        let attempts = self.config.retry_delays.len() + 1;
        let mut shutdown = self.shutdown.subscribe();
        for attempt in 1..=attempts {
            let (failure, stream) = match self.run(name, event.clone(), request_id.clone()).await {
                Ok(invocation) => match invocation.result {
                    Ok(_) => return,
                    Err(e) => (e.to_string(), invocation.log_stream_name),
                },
                // Deleted meanwhile, or stopping: nothing to retry.
                Err(ServiceError::NotFound(_) | ServiceError::ShuttingDown) => return,
                Err(e) => (e.to_string(), self.service_stream.clone()),
            };
            let line = match self.config.retry_delays.get(attempt - 1) {
                Some(delay) => format!(
                    "Asynchronous invocation {request_id} failed (attempt {attempt} of \
                     {attempts}): {failure}; retrying in {:.1} s",
                    delay.as_secs_f64()
                ),
                None => format!(
                    "[ERROR] Asynchronous invocation {request_id} failed after {attempts} \
                     attempts; the event is dropped. Last error: {failure}"
                ),
            };
            cloudwatch::write(&self.registry, name, &stream, &[line]).await;
            let Some(delay) = self.config.retry_delays.get(attempt - 1) else {
                tracing::warn!(function = name, %request_id, "asynchronous invocation failed for good");
                return;
            };
            tokio::select! {
                () = tokio::time::sleep(*delay) => {}
                _ = shutdown.wait_for(|stopping| *stopping) => return,
            }
        }
    }

    /// Writes one line of the service's own to the function's log group.
    async fn service_log(&self, name: &str, line: String) {
        cloudwatch::write(&self.registry, name, &self.service_stream, &[line]).await;
    }

    fn slot(&self, name: &str) -> Arc<Slot> {
        Arc::clone(lock(&self.slots).entry(name.to_owned()).or_default())
    }

    fn existing_slot(&self, name: &str) -> Option<Arc<Slot>> {
        lock(&self.slots).get(name).cloned()
    }

    /// Drops `slot` from the map, unless another slot took its place already.
    fn forget_slot(&self, name: &str, slot: &Arc<Slot>) {
        let mut slots = lock(&self.slots);
        if slots.get(name).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(name);
        }
    }

    /// The function's current deployment; deploys it first if there is none, the registry
    /// changed it since, or its credentials are about to expire.
    async fn deployment(&self, name: &str) -> Result<Arc<Deployment>, ServiceError> {
        let margin = millis(self.config.session_ttl / 4);
        loop {
            if self.is_shutting_down() {
                return Err(ServiceError::ShuttingDown);
            }
            let slot = self.slot(name);
            let mut state = slot.state.lock().await;
            if state.removed {
                continue;
            }
            let result = match self.registry.get_function(name).await? {
                Some(record) => {
                    if let Some(current) = &state.current
                        && current.revision_id == record.revision_id
                        && current.expires_ms - now_ms() > margin
                        && self.runtime.pool(name).is_some()
                    {
                        return Ok(Arc::clone(current));
                    }
                    self.deploy(record, &mut state).await
                }
                None => Err(ServiceError::NotFound(name.to_owned())),
            };
            if let Err(ServiceError::NotFound(_)) = result {
                self.runtime.remove(name);
                state.current = None;
                state.removed = true;
                self.forget_slot(name, &slot);
            }
            return result;
        }
    }

    async fn deploy(
        &self,
        record: FunctionRecord,
        state: &mut SlotState,
    ) -> Result<Arc<Deployment>, ServiceError> {
        let name = record.name.as_str();
        let not_found = || ServiceError::NotFound(name.to_owned());
        let kind = RuntimeKind::parse(&record.runtime)?;
        state.code_dirs.retain(|dir| dir.strong_count() > 0);
        let reusable = state
            .code_dirs
            .iter()
            .filter_map(Weak::upgrade)
            .find(|dir| dir.code_sha256() == record.code_sha256);
        let code = match reusable {
            Some(code) => code,
            None => {
                let zip = self
                    .registry
                    .get_function_code(name)
                    .await?
                    .ok_or_else(not_found)?;
                let keep: Vec<PathBuf> = state
                    .code_dirs
                    .iter()
                    .filter_map(Weak::upgrade)
                    .map(|dir| dir.path().to_owned())
                    .collect();
                let function_dir = self.config.code_root.join(name);
                let (revision, sha) = (record.revision_id.clone(), record.code_sha256.clone());
                let unpacked = tokio::task::spawn_blocking(move || {
                    code::unpack(&zip, &function_dir, &revision, &sha, &keep)
                })
                .await
                .map_err(|e| UnpackError::Io(std::io::Error::other(e)))
                .and_then(|r| r)
                .map_err(|e| match e {
                    UnpackError::BadCode(message) => ServiceError::BadCode(message),
                    UnpackError::Io(source) => ServiceError::Unpack {
                        function: name.to_owned(),
                        source,
                    },
                })?;
                let code = Arc::new(unpacked);
                state.code_dirs.push(Arc::downgrade(&code));
                code
            }
        };
        let runtime = kind.runtime(&record.runtime, code.path())?;
        let credentials = Credentials::generate();
        let now = now_ms();
        let expires_ms = now.saturating_add(millis(self.config.session_ttl));
        let session = credentials.record(session::role_name(&record.role), name, now, expires_ms);
        self.registry.create_iam_session(&session).await?;
        let config =
            deploy::function_config(&self.config, &record, code.path(), runtime, &credentials);
        self.runtime
            .deploy(config)
            .map_err(|source| ServiceError::Config {
                function: name.to_owned(),
                source,
            })?;
        tracing::info!(function = name, revision = %record.revision_id, "function deployed");
        let deployment = Arc::new(Deployment {
            revision_id: record.revision_id.clone(),
            expires_ms,
            _code: code,
        });
        state.current = Some(Arc::clone(&deployment));
        Ok(deployment)
    }

    /// The registry changed `name`: if it was deleted, its workers stop now (its next
    /// invocation would find it gone anyway).
    fn function_changed(self: &Arc<Self>, name: &str) {
        let Some(slot) = self.existing_slot(name) else {
            return;
        };
        let inner = Arc::clone(self);
        let name = name.to_owned();
        tokio::spawn(async move { inner.forget_if_deleted(&name, &slot).await });
    }

    async fn forget_if_deleted(&self, name: &str, slot: &Arc<Slot>) {
        let mut state = slot.state.lock().await;
        if state.removed || state.current.is_none() {
            return;
        }
        match self.registry.get_function(name).await {
            Ok(None) => {
                self.runtime.remove(name);
                state.current = None;
                state.removed = true;
                self.forget_slot(name, slot);
                tracing::info!(function = name, "function deleted; its workers stop");
            }
            Ok(Some(_)) => {}
            Err(e) => {
                tracing::warn!(function = name, error = %e, "cannot check a changed function")
            }
        }
    }
}

/// Follows the registry's change feed until the service is dropped or shut down.
async fn follow_changes(inner: Weak<Inner>, mut changes: broadcast::Receiver<RegistryChange>) {
    loop {
        let change = changes.recv().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match change {
            Ok(RegistryChange::FunctionChanged { function_name }) => {
                inner.function_changed(&function_name);
            }
            Ok(_) => {}
            // Missed changes: any function may have changed.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let names: Vec<String> = lock(&inner.slots).keys().cloned().collect();
                for name in names {
                    inner.function_changed(&name);
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Deletes expired sessions every `every`, until the service is dropped or shut down.
async fn sweep_sessions(inner: Weak<Inner>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match inner.registry.delete_expired_iam_sessions(now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(sessions = n, "expired function sessions deleted"),
            Err(e) => tracing::warn!(error = %e, "cannot delete expired function sessions"),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here leaves data inconsistent on a panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_and_arns() {
        for (given, name) in [
            ("my-fn", Some("my-fn")),
            ("my_fn:$LATEST", Some("my_fn")),
            ("123456789012:function:f1", Some("f1")),
            ("123456789012:function:f1:$LATEST", Some("f1")),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:f1",
                Some("f1"),
            ),
            (
                "arn:aws:lambda:eu-west-1:123456789012:function:f1:$LATEST",
                Some("f1"),
            ),
            ("arn:aws:lambda:us-east-1:123456789012:function:f1:3", None),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:f1:alias",
                None,
            ),
            ("arn:aws:iam::123456789012:role/r", None),
            ("arn:aws:lambda:us-east-1:123456789012:layer:l", None),
            ("12345:function:f1", None),
            ("", None),
            ("a/b", None),
            ("../x", None),
            (&"x".repeat(65), None),
        ] {
            assert_eq!(function_name(given), name, "{given}");
        }
    }
}
