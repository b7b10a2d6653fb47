//! Pools of warm workers, one per function generation, and the registry of deployed functions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::Semaphore;

use crate::worker::{STOP_GRACE, Worker};
use crate::{ConfigError, FunctionConfig, Invocation, InvokeError, RequestId};

/// The warm workers of one function generation (one code and configuration).
///
/// At most `concurrency` invocations run at once; further callers wait in order. An invocation
/// takes an idle worker or starts one, so at most `concurrency` workers exist. A worker that times
/// out, exits or breaks the protocol is killed and a fresh one is started by the next invocation.
///
/// A worker's environment is, in increasing precedence: `PATH` and `HOME` from the host (nothing
/// else of the host's environment is inherited), the variables Lambda derives from the
/// configuration (`AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_VERSION`,
/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, `AWS_LAMBDA_LOG_GROUP_NAME`, `AWS_LAMBDA_LOG_STREAM_NAME`,
/// `AWS_EXECUTION_ENV`, `LAMBDA_TASK_ROOT`, `_HANDLER`, `LANG`, `TZ`), the configuration's
/// `environment` (region, endpoint, credentials, user variables), and `PYTHONUNBUFFERED=1`.
#[derive(Debug)]
pub struct Pool {
    config: FunctionConfig,
    generation: u64,
    permits: Semaphore,
    idle: Mutex<Vec<Worker>>,
    retired: AtomicBool,
}

impl Pool {
    /// A pool with no workers yet; the first invocation starts one.
    pub fn new(config: FunctionConfig, generation: u64) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            permits: Semaphore::new(config.concurrency),
            config,
            generation,
            idle: Mutex::new(Vec::new()),
            retired: AtomicBool::new(false),
        })
    }

    /// The configuration this pool runs.
    pub fn config(&self) -> &FunctionConfig {
        &self.config
    }

    /// Which generation of its function this pool is.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How many warm workers are waiting for an invocation.
    pub fn idle_workers(&self) -> usize {
        self.idle().len()
    }

    /// Invokes the handler with `event` under a fresh request id.
    pub async fn invoke(&self, event: Value) -> Result<Invocation, InvokeError> {
        self.invoke_with_id(event, RequestId::generate()).await
    }

    /// Invokes the handler with `event`; the handler sees `request_id` as `aws_request_id`.
    /// Waits while `concurrency` invocations are running.
    pub async fn invoke_with_id(
        &self,
        event: Value,
        request_id: RequestId,
    ) -> Result<Invocation, InvokeError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| InvokeError::ShuttingDown(self.config.name.clone()))?;
        // A worker that died while idle (killed from outside, a background thread exited the
        // process) is replaced before the invocation, not reported as its failure.
        let worker = self
            .idle()
            .pop()
            .and_then(|mut w| w.is_alive().then_some(w));
        let worker = match worker {
            Some(worker) => worker,
            None => Worker::spawn(&self.config).map_err(|source| InvokeError::Spawn {
                function: self.config.name.clone(),
                source,
            })?,
        };
        let exchange = worker.invoke(&self.config, request_id, &event).await;
        if let Some(worker) = exchange.worker {
            if self.retired.load(Ordering::Acquire) {
                worker.stop().await;
            } else {
                self.idle().push(worker);
            }
        }
        Ok(exchange.invocation)
    }

    /// Stops taking invocations: callers still waiting get [`InvokeError::ShuttingDown`], idle
    /// workers are killed, running invocations finish and then stop their workers.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.permits.close();
        let idle = std::mem::take(&mut *self.idle());
        drop(idle); // kill_on_drop: idle workers hold no work
    }

    /// Graceful shutdown: waits (up to the function's timeout plus a grace period) for running
    /// and waiting invocations, then refuses new ones and stops every worker by closing its
    /// stdin, killing those that do not exit.
    pub async fn shutdown(&self) {
        self.retired.store(true, Ordering::Release);
        let all = u32::try_from(self.config.concurrency).unwrap_or(u32::MAX);
        let wait = self.config.timeout + STOP_GRACE;
        let drained = tokio::time::timeout(wait, self.permits.acquire_many(all)).await;
        self.permits.close();
        drop(drained);
        let idle = std::mem::take(&mut *self.idle());
        for worker in idle {
            worker.stop().await;
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Worker>> {
        // A panic while holding the lock cannot leave the Vec inconsistent.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The deployed functions, by name, each with its current pool generation.
#[derive(Debug, Default)]
pub struct FunctionRuntime {
    pools: Mutex<HashMap<String, Arc<Pool>>>,
    generations: AtomicU64,
    shutting_down: AtomicBool,
}

impl FunctionRuntime {
    /// An empty runtime.
    pub fn new() -> Self {
        Self::default()
    }

    /// Deploys `config` under its name, replacing (and retiring) any previous generation: its
    /// waiting callers move to the new one, its running invocations finish on the old code.
    /// Returns the new generation.
    pub fn deploy(&self, config: FunctionConfig) -> Result<u64, ConfigError> {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let pool = Arc::new(Pool::new(config, generation)?);
        let name = pool.config().name.clone();
        let old = self.pools().insert(name, pool);
        if let Some(old) = old {
            old.retire();
        }
        Ok(generation)
    }

    /// The current pool of `name`.
    pub fn pool(&self, name: &str) -> Option<Arc<Pool>> {
        self.pools().get(name).cloned()
    }

    /// Invokes `name` with `event`; see [`Pool::invoke_with_id`].
    pub async fn invoke(
        &self,
        name: &str,
        event: Value,
        request_id: RequestId,
    ) -> Result<Invocation, InvokeError> {
        loop {
            if self.shutting_down.load(Ordering::Acquire) {
                return Err(InvokeError::ShuttingDown(name.to_owned()));
            }
            let pool = self
                .pool(name)
                .ok_or_else(|| InvokeError::NotFound(name.to_owned()))?;
            match pool.invoke_with_id(event.clone(), request_id.clone()).await {
                // The pool was replaced while we waited: try the current generation.
                Err(InvokeError::ShuttingDown(_))
                    if self
                        .pool(name)
                        .is_some_and(|current| !Arc::ptr_eq(&current, &pool)) => {}
                other => return other,
            }
        }
    }

    /// Removes `name`; its running invocations finish, then its workers stop. Returns whether it
    /// was deployed.
    pub fn remove(&self, name: &str) -> bool {
        let old = self.pools().remove(name);
        match old {
            Some(pool) => {
                pool.retire();
                true
            }
            None => false,
        }
    }

    /// Graceful shutdown of every function: see [`Pool::shutdown`].
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        let pools: Vec<_> = self.pools().drain().map(|(_, pool)| pool).collect();
        let mut stopping = tokio::task::JoinSet::new();
        for pool in pools {
            stopping.spawn(async move { pool.shutdown().await });
        }
        while stopping.join_next().await.is_some() {}
    }

    fn pools(&self) -> MutexGuard<'_, HashMap<String, Arc<Pool>>> {
        self.pools
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
