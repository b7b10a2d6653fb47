//! Test support shared by Ferrule's test suites (a dev-dependency only).
//!
//! What it is for: the control plane's and the binary's tests both drive the real `aws` CLI;
//! [`aws_cli`] runs it through its own entry point in one long-lived Python process, so a test
//! pays the CLI's start-up (over a second of CPU) once, and parses its errors.
//!
//! What it may depend on: `serde_json` and the standard library. It panics with a message on
//! anything a test could not go on from.

pub mod aws_cli;
