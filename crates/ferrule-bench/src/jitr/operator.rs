//! The operator: a child process that activates certificates when asked, so that the bench
//! measures an operator's reaction without speaking the control plane's HTTP API itself.
//!
//! Protocol, one line each way per certificate, over the child's stdin and stdout:
//! - the child prints `ready` once it can take requests (its API client warmed up);
//! - the bench writes a certificate id;
//! - the child activates it and answers `ok ID UPDATE_US ATTACH_US` (how long each API call
//!   took, in microseconds) or `error ID MESSAGE`.
//!
//! The revoke scenario speaks the same protocol to an operator that revokes instead: it
//! answers `ok ID UPDATE_US 0` (one API call, UpdateCertificate REVOKED).
//!
//! Pipes are driven by two plain threads (this crate's tokio has no process support), which
//! stamp every answer with the time its line arrived. Closing stdin asks the child to exit.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

/// One line from the operator, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// It can take requests.
    Ready,
    /// The certificate is ACTIVE and has its policy.
    Activated {
        certificate_id: String,
        update_us: u64,
        attach_us: u64,
    },
    /// Activating it failed.
    Failed {
        certificate_id: String,
        message: String,
    },
}

impl Answer {
    /// Parses one line of the protocol.
    pub(crate) fn parse(line: &str) -> Result<Answer, String> {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("ready") => Ok(Answer::Ready),
            Some("ok") => {
                let (Some(id), Some(update), Some(attach), None) =
                    (words.next(), words.next(), words.next(), words.next())
                else {
                    return Err(format!(
                        "expected `ok ID UPDATE_US ATTACH_US`, got {line:?}"
                    ));
                };
                let micros = |w: &str| {
                    w.parse::<u64>()
                        .map_err(|_| format!("{w:?} is not a count of microseconds in {line:?}"))
                };
                Ok(Answer::Activated {
                    certificate_id: id.to_owned(),
                    update_us: micros(update)?,
                    attach_us: micros(attach)?,
                })
            }
            Some("error") => match words.next() {
                Some(id) => Ok(Answer::Failed {
                    certificate_id: id.to_owned(),
                    message: words.collect::<Vec<_>>().join(" "),
                }),
                None => Err(format!("expected `error ID MESSAGE`, got {line:?}")),
            },
            _ => Err(format!("unexpected line from the operator: {line:?}")),
        }
    }
}

/// The running operator process.
#[derive(Debug)]
pub(crate) struct Operator {
    child: Child,
    requests: Option<std_mpsc::Sender<String>>,
    /// Answers (or a protocol error), each with the time its line arrived.
    pub(crate) answers: mpsc::UnboundedReceiver<(Instant, Result<Answer, String>)>,
}

impl Operator {
    /// Starts `argv` and waits until it prints `ready`.
    pub(crate) async fn start(argv: &[String], deadline: Instant) -> anyhow::Result<Operator> {
        let Some((program, args)) = argv.split_first() else {
            bail!("no operator command given (after `--`)");
        };
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting the operator {program:?}"))?;
        let stdin = child.stdin.take().context("the operator's stdin")?;
        let stdout = child.stdout.take().context("the operator's stdout")?;

        let (request_tx, request_rx) = std_mpsc::channel::<String>();
        std::thread::spawn(move || write_requests(stdin, &request_rx));
        let (answer_tx, answers) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let at = Instant::now();
                if answer_tx.send((at, Answer::parse(&line))).is_err() {
                    break;
                }
            }
        });
        let mut operator = Operator {
            child,
            requests: Some(request_tx),
            answers,
        };
        match timeout_at(deadline, operator.answers.recv()).await {
            Ok(Some((_, Ok(Answer::Ready)))) => Ok(operator),
            Ok(Some((_, Ok(other)))) => {
                operator.stop().await;
                bail!("the operator answered {other:?} before `ready`")
            }
            Ok(Some((_, Err(e)))) => {
                operator.stop().await;
                bail!("{e}")
            }
            Ok(None) => {
                operator.stop().await;
                bail!("the operator exited before printing `ready` (its stderr is above)")
            }
            Err(_) => {
                operator.stop().await;
                bail!("the operator did not print `ready` before the deadline")
            }
        }
    }

    /// Asks for `certificate_id` to be activated.
    pub(crate) fn activate(&self, certificate_id: &str) -> anyhow::Result<()> {
        self.ask(certificate_id)
    }

    /// Hands `certificate_id` to the operator for whatever it was started to do (activate it
    /// for JITR, revoke it for the revoke scenario).
    pub(crate) fn ask(&self, certificate_id: &str) -> anyhow::Result<()> {
        self.requests
            .as_ref()
            .and_then(|r| r.send(certificate_id.to_owned()).ok())
            .context("the operator is gone")
    }

    /// Closes its stdin and waits up to two seconds for it to exit, then kills it.
    pub(crate) async fn stop(mut self) {
        self.requests = None;
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_requests(mut stdin: ChildStdin, requests: &std_mpsc::Receiver<String>) {
    // Ends when the bench drops its sender (stdin then closes) or the child stops reading.
    while let Ok(id) = requests.recv() {
        if writeln!(stdin, "{id}")
            .and_then(|()| stdin.flush())
            .is_err()
        {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_protocol() {
        assert_eq!(Answer::parse("ready"), Ok(Answer::Ready));
        assert_eq!(
            Answer::parse("ok abc 1200 3400"),
            Ok(Answer::Activated {
                certificate_id: "abc".into(),
                update_us: 1200,
                attach_us: 3400,
            })
        );
        assert_eq!(
            Answer::parse("error abc ResourceNotFoundException: no such thing"),
            Ok(Answer::Failed {
                certificate_id: "abc".into(),
                message: "ResourceNotFoundException: no such thing".into(),
            })
        );
        for bad in ["", "ok abc", "ok abc 1 2 3", "ok abc x 2", "error", "hello"] {
            assert!(Answer::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn drives_a_child_process() {
        // A shell operator that activates everything in 1 and 2 microseconds.
        let script = "echo ready; while read id; do echo \"ok $id 1 2\"; done";
        let argv = ["sh", "-c", script].map(String::from);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut operator = Operator::start(&argv, deadline).await.expect("starts");
        operator.activate("c0ffee").expect("sends");
        let (_, answer) = operator.answers.recv().await.expect("answers");
        assert_eq!(
            answer,
            Ok(Answer::Activated {
                certificate_id: "c0ffee".into(),
                update_us: 1,
                attach_us: 2,
            })
        );
        operator.stop().await;
    }
}
