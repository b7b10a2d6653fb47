//! From a registry record to a [`FunctionConfig`]: which runtime runs it and the environment its
//! workers get. Pure apart from looking at the unpacked `bootstrap`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ferrule_store::FunctionRecord;

use crate::service::{ServiceConfig, ServiceError};
use crate::session::Credentials;
use crate::{CommandRuntime, FunctionConfig, PythonRuntime, Runtime, cloudwatch};

/// The version every invocation runs: versions and aliases are not supported.
pub(crate) const VERSION: &str = "$LATEST";

/// The runtimes the service knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RuntimeKind {
    /// `python3.N`: the host's `python3` runs the embedded bootstrap.
    Python,
    /// `provided`, `provided.al2`, `provided.al2023`: the zip's own `bootstrap` executable,
    /// which speaks the line protocol (see [`crate::protocol`]).
    Provided,
}

impl RuntimeKind {
    /// The kind of a Lambda runtime identifier; checked before the code is unpacked.
    pub(crate) fn parse(runtime: &str) -> Result<Self, ServiceError> {
        if let Some(minor) = runtime.strip_prefix("python3.")
            && !minor.is_empty()
            && minor.bytes().all(|b| b.is_ascii_digit())
        {
            return Ok(Self::Python);
        }
        match runtime {
            "provided" | "provided.al2" | "provided.al2023" => Ok(Self::Provided),
            _ => Err(ServiceError::UnsupportedRuntime(runtime.to_owned())),
        }
    }

    /// The runtime for code unpacked in `code_dir`.
    pub(crate) fn runtime(
        self,
        runtime: &str,
        code_dir: &Path,
    ) -> Result<Arc<dyn Runtime>, ServiceError> {
        match self {
            Self::Python => Ok(Arc::new(PythonRuntime::new(runtime, "python3"))),
            Self::Provided => {
                let bootstrap = code_dir.join("bootstrap");
                let executable = std::fs::metadata(&bootstrap)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
                if !executable {
                    return Err(ServiceError::BadCode(format!(
                        "runtime {runtime} needs an executable file named `bootstrap` at the root \
                         of the zip (store it with its exec bit set)"
                    )));
                }
                Ok(Arc::new(CommandRuntime::new(
                    runtime,
                    bootstrap,
                    Vec::new(),
                )))
            }
        }
    }
}

/// The function's configuration for the runtime.
pub(crate) fn function_config(
    service: &ServiceConfig,
    record: &FunctionRecord,
    code_dir: &Path,
    runtime: Arc<dyn Runtime>,
    credentials: &Credentials,
) -> FunctionConfig {
    let memory_mb = u32::try_from(record.memory_mb.max(0)).unwrap_or(u32::MAX);
    FunctionConfig {
        name: record.name.clone(),
        version: VERSION.to_owned(),
        arn: format!(
            "arn:aws:lambda:{}:{}:function:{}",
            service.region, service.account_id, record.name
        ),
        handler: record.handler.clone(),
        code_dir: code_dir.to_owned(),
        memory_mb,
        timeout: Duration::from_secs(u64::try_from(record.timeout_s).unwrap_or(0).max(1)),
        concurrency: service.concurrency.max(1),
        environment: environment(service, record, memory_mb, credentials),
        runtime,
    }
}

/// The function's own variables, then the ones Lambda sets, which win: a function cannot
/// pretend to be another or swap its credentials.
fn environment(
    service: &ServiceConfig,
    record: &FunctionRecord,
    memory_mb: u32,
    credentials: &Credentials,
) -> BTreeMap<String, String> {
    let mut env = record.environment.clone();
    let reserved = [
        ("AWS_REGION", service.region.clone()),
        ("AWS_DEFAULT_REGION", service.region.clone()),
        ("AWS_LAMBDA_FUNCTION_NAME", record.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", VERSION.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            cloudwatch::log_group_name(&record.name),
        ),
        ("AWS_ENDPOINT_URL", service.endpoint_url.clone()),
        ("AWS_ACCESS_KEY_ID", credentials.access_key_id.clone()),
        (
            "AWS_SECRET_ACCESS_KEY",
            credentials.secret_access_key.clone(),
        ),
        ("AWS_SESSION_TOKEN", credentials.session_token.clone()),
    ];
    for (key, value) in reserved {
        env.insert(key.to_owned(), value);
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_kinds() {
        for python in ["python3.8", "python3.12", "python3.13"] {
            assert_eq!(RuntimeKind::parse(python).ok(), Some(RuntimeKind::Python));
        }
        for provided in ["provided", "provided.al2", "provided.al2023"] {
            assert_eq!(
                RuntimeKind::parse(provided).ok(),
                Some(RuntimeKind::Provided)
            );
        }
        for other in [
            "nodejs20.x",
            "python2.7",
            "python3.",
            "python3.x",
            "java21",
            "",
        ] {
            assert!(
                matches!(RuntimeKind::parse(other), Err(ServiceError::UnsupportedRuntime(r)) if r == other),
                "{other}"
            );
        }
    }
}
