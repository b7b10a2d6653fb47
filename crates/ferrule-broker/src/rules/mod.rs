//! The rules engine: enabled topic rules see every message published on a topic their FROM
//! filter matches (devices' messages and the broker's own events alike), evaluate their AWS IoT
//! SQL, and run their actions.
//!
//! The publish path only checks a snapshot of the rules' filters and, on a match, hands the
//! message to a bounded queue (a full queue drops it, counted and logged: devices are never
//! slowed by rules). A dispatcher takes messages off the queue and runs each matching rule in
//! its own task, at most [`RulesSettings::concurrency`] at once. Rules are compiled when loaded
//! (`compile`), and reloaded from the registry whenever its change feed says a rule changed.
//! Running a rule and its actions is `run`; the HTTP action's client is `http`.

mod compile;
mod http;
mod log;
mod run;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use ferrule_store::{PageRequest, Registry, RegistryChange};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::broker::{BrokerInner, now_ms};
use crate::session::Message;

use compile::RuleSet;

/// How many republishes deep a message may be before rules stop seeing it: a rule that
/// republishes onto its own FROM filter would otherwise loop forever.
pub(crate) const MAX_RULE_HOPS: u8 = 8;

/// The future a [`FunctionInvoker`] returns.
pub type InvokeFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Runs functions for the `lambda` action: an asynchronous invocation (AWS's `Event` type)
/// with the rule's output as the event. `Err` says why the invocation could not be queued
/// (unknown function, no runtime), and makes the rule's error action run.
pub trait FunctionInvoker: Send + Sync + 'static {
    /// Queues one invocation of `function_arn` with `event` (JSON text).
    fn invoke(&self, function_arn: &str, event: Vec<u8>) -> InvokeFuture<'_>;
}

/// What the rules engine needs.
#[derive(Clone)]
pub struct RulesSettings {
    /// Where the rules are stored.
    pub registry: Registry,
    /// `accountid()` and the account in ARNs.
    pub account_id: String,
    /// The region in ARNs.
    pub region: String,
    /// URL prefixes the `http` action may post to; any other URL fails the action.
    pub http_allow: Vec<String>,
    /// The function runtime, if there is one; without it the `lambda` action fails.
    pub functions: Option<Arc<dyn FunctionInvoker>>,
    /// Messages waiting for the rules; beyond it they are dropped and counted.
    pub queue_capacity: usize,
    /// Rule executions (a rule on a message, with its actions) running at once.
    pub concurrency: usize,
}

/// One message on its way to the rules, with what the SQL functions need to know of it.
pub(crate) struct RuleInput {
    pub(crate) msg: Arc<Message>,
    pub(crate) received_ms: i64,
}

/// The engine's handle on the publish path.
pub(crate) struct RulesEngine {
    set: ArcSwap<RuleSet>,
    tx: mpsc::Sender<RuleInput>,
    queued: Arc<AtomicU64>,
    dropped: metrics::Counter,
    depth: metrics::Gauge,
    last_drop_warning: AtomicU64,
}

impl RulesEngine {
    /// Loads the enabled rules and starts the dispatcher and the reloader.
    pub(crate) async fn start(
        broker: &Arc<BrokerInner>,
        settings: RulesSettings,
    ) -> Result<Arc<RulesEngine>, ferrule_store::RegistryError> {
        let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
        let settings = Arc::new(settings);
        // Subscribed before the first load: a change between the two is not missed.
        let feed = settings.registry.subscribe();
        let set = load(&settings).await?;
        tracing::info!(rules = set.len(), "topic rules loaded");
        let engine = Arc::new(RulesEngine {
            set: ArcSwap::from_pointee(set),
            tx,
            queued: Arc::new(AtomicU64::new(0)),
            dropped: metrics::counter!("ferrule_rules_dropped_total"),
            depth: metrics::gauge!("ferrule_rules_queue_depth"),
            last_drop_warning: AtomicU64::new(0),
        });
        tokio::spawn(reload_on_change(
            Arc::downgrade(&engine),
            settings.clone(),
            feed,
            broker.shutdown.subscribe(),
        ));
        tokio::spawn(dispatch(
            Arc::downgrade(broker),
            engine.clone(),
            settings,
            rx,
            broker.shutdown.subscribe(),
        ));
        Ok(engine)
    }

    /// Called for every published message: queues it if a rule listens to its topic.
    /// Whether a rule listens to `topic`.
    pub(crate) fn listens_to(&self, topic: &str) -> bool {
        let set = self.set.load();
        !set.is_empty() && set.matches(topic)
    }

    pub(crate) fn offer(&self, msg: &Arc<Message>) {
        if msg.rule_hops >= MAX_RULE_HOPS {
            return;
        }
        let set = self.set.load();
        if set.is_empty() || !set.matches(msg.topic.as_str()) {
            return;
        }
        let input = RuleInput {
            msg: msg.clone(),
            received_ms: i64::try_from(now_ms()).unwrap_or(i64::MAX),
        };
        match self.tx.try_send(input) {
            Ok(()) => {
                let n = self.queued.fetch_add(1, Ordering::Relaxed) + 1;
                self.depth.set(n as f64);
            }
            Err(_) => {
                self.dropped.increment(1);
                // One warning per second at most: a flood must not become a flood of logs.
                let now = now_ms() / 1000;
                if self.last_drop_warning.swap(now, Ordering::Relaxed) != now {
                    tracing::warn!(topic = %msg.topic, "the rules queue is full: messages are dropped before the rules see them");
                }
            }
        }
    }
}

/// Every enabled rule in the registry, compiled. A stored rule that no longer compiles (it was
/// checked when stored) is left out with an error in the log.
async fn load(settings: &RulesSettings) -> Result<RuleSet, ferrule_store::RegistryError> {
    let mut records = Vec::new();
    let mut page = PageRequest::first(1000);
    loop {
        let result = settings
            .registry
            .list_rules(None, Some(false), &page)
            .await?;
        records.extend(result.items);
        match result.next_marker {
            Some(marker) => page.marker = Some(marker),
            None => break,
        }
    }
    Ok(RuleSet::compile(records))
}

async fn reload_on_change(
    engine: std::sync::Weak<RulesEngine>,
    settings: Arc<RulesSettings>,
    mut feed: tokio::sync::broadcast::Receiver<RegistryChange>,
    mut shutdown: watch::Receiver<bool>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let change = tokio::select! {
            c = feed.recv() => c,
            _ = shutdown.wait_for(|down| *down) => return,
        };
        let reload = match change {
            Ok(RegistryChange::RuleChanged { .. }) | Err(RecvError::Lagged(_)) => true,
            Ok(_) => false,
            Err(RecvError::Closed) => return,
        };
        if !reload {
            continue;
        }
        // Coalesce a burst of changes into one reload.
        while let Ok(RegistryChange::RuleChanged { .. })
        | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) = feed.try_recv()
        {}
        let Some(engine) = engine.upgrade() else {
            return;
        };
        match load(&settings).await {
            Ok(set) => {
                tracing::info!(rules = set.len(), "topic rules reloaded");
                engine.set.store(Arc::new(set));
            }
            Err(e) => {
                tracing::error!(error = %e, "could not reload the topic rules; the previous ones stay in force")
            }
        }
    }
}

/// Takes messages off the queue and runs every rule that matches each, in bounded concurrency.
async fn dispatch(
    broker: std::sync::Weak<BrokerInner>,
    engine: Arc<RulesEngine>,
    settings: Arc<RulesSettings>,
    mut rx: mpsc::Receiver<RuleInput>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let http = Arc::new(http::Client::new());
    let log = log::RuleLog::start(settings.registry.clone(), shutdown.clone());
    loop {
        let input = tokio::select! {
            i = rx.recv() => i,
            _ = shutdown.wait_for(|down| *down) => return,
        };
        let Some(input) = input else { return };
        let n = engine
            .queued
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        engine.depth.set(n as f64);
        let Some(broker) = broker.upgrade() else {
            return;
        };
        let set = engine.set.load_full();
        let input = Arc::new(input);
        for rule in set.matching(input.msg.topic.as_str()) {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let ctx = run::RunContext {
                broker: broker.clone(),
                settings: settings.clone(),
                http: http.clone(),
                log: log.clone(),
            };
            let input = input.clone();
            tokio::spawn(async move {
                run::run_rule(&ctx, &rule, &input).await;
                drop(permit);
            });
        }
    }
}

/// How long one HTTP attempt may take (AWS's request timeout).
pub(crate) const HTTP_TIMEOUT: Duration = Duration::from_secs(3);
