//! Runtimes: how to start a worker process for a function. Every runtime speaks the same line
//! protocol ([`crate::protocol`]); only the command line differs.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::FunctionConfig;

/// The Python bootstrap, passed to the interpreter with `-c`.
pub const PYTHON_BOOTSTRAP: &str = include_str!("bootstrap.py");

/// The command line that starts one worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerCommand {
    /// The executable, looked up on the worker's `PATH` if it has no slash.
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
}

/// A language runtime: anything that can start a worker speaking the line protocol.
pub trait Runtime: Send + Sync + fmt::Debug {
    /// The runtime's identifier, for `AWS_EXECUTION_ENV` (`python3.12`, `provided`).
    fn name(&self) -> &str;

    /// The command line that starts a worker for `function`. The worker's working directory is
    /// the function's code directory, and its environment is described at [`crate::Pool`].
    fn worker_command(&self, function: &FunctionConfig) -> WorkerCommand;
}

/// Python 3: the host's interpreter runs the embedded bootstrap, which imports
/// `module.function` from the code directory once and then serves invocations.
#[derive(Clone, Debug)]
pub struct PythonRuntime {
    name: String,
    interpreter: OsString,
}

impl PythonRuntime {
    /// `name` is the Lambda runtime identifier (`python3.12`); `interpreter` the program to run
    /// (`python3`, or an absolute path).
    pub fn new(name: impl Into<String>, interpreter: impl Into<OsString>) -> Self {
        Self {
            name: name.into(),
            interpreter: interpreter.into(),
        }
    }
}

impl Default for PythonRuntime {
    /// `python3` from the worker's `PATH`, as `python3.12`.
    fn default() -> Self {
        Self::new("python3.12", "python3")
    }
}

impl Runtime for PythonRuntime {
    fn name(&self) -> &str {
        &self.name
    }

    fn worker_command(&self, function: &FunctionConfig) -> WorkerCommand {
        WorkerCommand {
            program: self.interpreter.clone(),
            args: vec![
                "-c".into(),
                PYTHON_BOOTSTRAP.into(),
                function.code_dir.clone().into_os_string(),
                function.handler.clone().into(),
            ],
        }
    }
}

/// Any executable that speaks the line protocol, started as `program args… <code dir> <handler>`
/// (the same arguments the Python bootstrap receives).
#[derive(Clone, Debug)]
pub struct CommandRuntime {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
}

impl CommandRuntime {
    /// A runtime called `name` that starts `program` with `args` before the code directory and
    /// handler.
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>, args: Vec<OsString>) -> Self {
        Self {
            name: name.into(),
            program: program.into(),
            args,
        }
    }
}

impl Runtime for CommandRuntime {
    fn name(&self) -> &str {
        &self.name
    }

    fn worker_command(&self, function: &FunctionConfig) -> WorkerCommand {
        let mut args = self.args.clone();
        args.push(function.code_dir.clone().into_os_string());
        args.push(function.handler.clone().into());
        WorkerCommand {
            program: self.program.clone().into_os_string(),
            args,
        }
    }
}
