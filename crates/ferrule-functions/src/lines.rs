//! Bounded reading of a worker's output: a worker is user code, so neither a line without end
//! nor a flood of log lines may exhaust the host's memory.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Largest response line: Lambda's 6 MB synchronous payload limit plus room for the envelope.
pub(crate) const MAX_RESPONSE_LINE: usize = 6 * 1024 * 1024 + 1024;
/// Longest log line kept; the rest of the line is dropped (CloudWatch's event size limit).
pub(crate) const MAX_LOG_LINE: usize = 256 * 1024;
/// Log bytes kept per invocation; further lines are counted and dropped.
pub(crate) const MAX_LOG_BYTES: usize = 4 * 1024 * 1024;

/// One line read with [`read_line_capped`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CappedLine {
    /// The line without its newline, lossily decoded, at most `max` bytes of it.
    pub(crate) text: String,
    /// Whether bytes past `max` were dropped.
    pub(crate) truncated: bool,
}

/// Reads up to and including the next `\n` (or EOF), keeping at most `max` bytes. `None` at EOF
/// before any byte. Not cancel-safe: a line partly read when the future is dropped is lost.
pub(crate) async fn read_line_capped<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Option<CappedLine>> {
    let mut line = Vec::new();
    let mut truncated = false;
    let mut seen_any = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            break;
        }
        seen_any = true;
        let newline = buf.iter().position(|&b| b == b'\n');
        let chunk = &buf[..newline.unwrap_or(buf.len())];
        let room = max.saturating_sub(line.len());
        if chunk.len() > room {
            truncated = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = newline.map_or(buf.len(), |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            break;
        }
    }
    Ok(seen_any.then(|| CappedLine {
        text: String::from_utf8_lossy(&line).into_owned(),
        truncated,
    }))
}

/// An invocation's log lines, bounded by [`MAX_LOG_BYTES`]. The `END` and `REPORT` lines are
/// always kept, so the log still shows how the invocation ended.
#[derive(Debug, Default)]
pub(crate) struct LogCollector {
    lines: Vec<String>,
    bytes: usize,
    dropped: usize,
}

impl LogCollector {
    pub(crate) fn push(&mut self, line: String) {
        let always = line.starts_with("END RequestId: ") || line.starts_with("REPORT RequestId: ");
        if !always && self.bytes + line.len() > MAX_LOG_BYTES {
            self.dropped += 1;
            return;
        }
        self.bytes += line.len();
        self.lines.push(line);
    }

    pub(crate) fn has_line_starting_with(&self, prefix: &str) -> bool {
        self.lines.iter().rev().any(|l| l.starts_with(prefix))
    }

    pub(crate) fn finish(mut self) -> Vec<String> {
        if self.dropped > 0 {
            let note = format!(
                "[ferrule] {} log lines dropped: over {MAX_LOG_BYTES} bytes in one invocation",
                self.dropped
            );
            let at = self
                .lines
                .iter()
                .rposition(|l| l.starts_with("END RequestId: "))
                .unwrap_or(self.lines.len());
            self.lines.insert(at, note);
        }
        self.lines
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn all(mut input: &[u8], max: usize) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        while let Some(line) = read_line_capped(&mut input, max).await.unwrap() {
            out.push((line.text, line.truncated));
        }
        out
    }

    #[tokio::test]
    async fn lines_are_split_and_capped() {
        assert_eq!(all(b"", 4).await, []);
        assert_eq!(
            all(b"ab\n\nabcdef\nxyz", 4).await,
            [
                ("ab".to_owned(), false),
                (String::new(), false),
                ("abcd".to_owned(), true),
                ("xyz".to_owned(), false)
            ]
        );
    }

    #[test]
    fn log_collector_keeps_the_end_and_counts_what_it_drops() {
        let mut logs = LogCollector::default();
        logs.push("START RequestId: r".into());
        for _ in 0..5 {
            logs.push("x".repeat(MAX_LOG_BYTES / 2));
        }
        logs.push("END RequestId: r".into());
        logs.push("REPORT RequestId: r".into());
        let lines = logs.finish();
        assert_eq!(lines.len(), 5);
        assert!(
            lines[2].starts_with("[ferrule] 4 log lines dropped"),
            "{}",
            lines[2]
        );
        assert_eq!(lines[3], "END RequestId: r");
    }
}
