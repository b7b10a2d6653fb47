//! Helpers shared by the test binaries: temporary code directories, configurations, bounds.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferrule_functions::{FunctionConfig, FunctionError, Invocation, Pool, PythonRuntime};
use serde_json::Value;

/// Every test finishes within this, or fails.
pub(crate) const TEST_BOUND: Duration = Duration::from_secs(60);

pub(crate) async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, f)
        .await
        .expect("test exceeded its time bound")
}

/// A code directory under the system temp dir, removed on drop.
pub(crate) struct CodeDir(PathBuf);

impl CodeDir {
    pub(crate) fn new(files: &[(&str, &str)]) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ferrule-functions-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        Self(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for CodeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn config(name: &str, code: &CodeDir) -> FunctionConfig {
    FunctionConfig {
        name: name.into(),
        version: "$LATEST".into(),
        arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
        handler: "handler.handle".into(),
        code_dir: code.path().to_owned(),
        memory_mb: 256,
        timeout: Duration::from_secs(10),
        concurrency: 1,
        environment: BTreeMap::new(),
        runtime: Arc::new(PythonRuntime::default()),
    }
}

pub(crate) fn pool(config: FunctionConfig) -> Pool {
    Pool::new(config, 1).unwrap()
}

pub(crate) fn ok(invocation: &Invocation) -> &Value {
    match &invocation.result {
        Ok(value) => value,
        Err(e) => panic!(
            "invocation failed: {e:?}\nlogs: {:#?}",
            invocation.log_lines
        ),
    }
}

pub(crate) fn err(invocation: &Invocation) -> &FunctionError {
    match &invocation.result {
        Ok(value) => panic!("invocation succeeded with {value}"),
        Err(e) => e,
    }
}

/// Gone, or a zombie nobody has reaped yet: either way no longer running.
pub(crate) fn is_dead(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

pub(crate) async fn wait_dead(pid: u64) {
    for _ in 0..100 {
        if is_dead(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("worker {pid} is still running");
}

pub(crate) const PID_HANDLER: &str = r#"
import os, time
def handle(event, context):
    if event.get("sleep"):
        print("going to sleep")
    time.sleep(event.get("sleep", 0))
    if event.get("exit"):
        print("about to exit")
        os._exit(3)
    return os.getpid()
"#;
