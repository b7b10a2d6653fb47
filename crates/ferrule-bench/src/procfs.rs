//! What the idle scenario reads from `/proc`: a process's resident memory
//! (`/proc/PID/status`) and its open-file limit (`/proc/PID/limits`). Parsing is kept apart
//! from reading so it can be tested on fixed text.

use std::fs;

use anyhow::Context;

/// Resident memory of a process, in KiB, as `/proc/PID/status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Memory {
    /// `VmRSS`: every resident page (anonymous, file-backed and shared).
    pub(crate) rss_kib: u64,
    /// `RssAnon`: resident anonymous pages (the heap and stacks), if the kernel reports it.
    pub(crate) anon_kib: Option<u64>,
}

/// Reads the resident memory of process `pid`.
pub(crate) fn memory(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_status(&text).with_context(|| format!("{path} has no VmRSS line"))
}

/// The soft limit on open files of process `pid` (`None`: unlimited).
pub(crate) fn open_files_limit(pid: &str) -> anyhow::Result<Option<u64>> {
    let path = format!("/proc/{pid}/limits");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_open_files_limit(&text).with_context(|| format!("{path} has no Max open files line"))
}

/// The `VmRSS` and `RssAnon` lines of a `/proc/PID/status` text (`VmRSS:  12345 kB`).
pub(crate) fn parse_status(text: &str) -> Option<Memory> {
    let kib = |key: &str| {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(key)?.strip_prefix(':')?;
            let mut words = rest.split_whitespace();
            let value = words.next()?.parse::<u64>().ok()?;
            (words.next() == Some("kB")).then_some(value)
        })
    };
    Some(Memory {
        rss_kib: kib("VmRSS")?,
        anon_kib: kib("RssAnon"),
    })
}

/// The soft limit of the `Max open files` line of a `/proc/PID/limits` text: `Some(None)` when
/// unlimited, `None` when the line is missing or malformed.
pub(crate) fn parse_open_files_limit(text: &str) -> Option<Option<u64>> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .strip_prefix("Max open files")?
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        return Some(None);
    }
    soft.parse().ok().map(Some)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tferrule\nUmask:\t0022\nState:\tS (sleeping)\n\
        VmPeak:\t  612340 kB\nVmSize:\t  548000 kB\nVmHWM:\t   40960 kB\n\
        VmRSS:\t   31234 kB\nRssAnon:\t   20480 kB\nRssFile:\t   10754 kB\n\
        RssShmem:\t       0 kB\nThreads:\t4\n";

    #[test]
    fn reads_vmrss_and_rssanon() {
        assert_eq!(
            parse_status(STATUS),
            Some(Memory {
                rss_kib: 31234,
                anon_kib: Some(20480)
            })
        );
        // VmRSSx or VmHWM must not be mistaken for VmRSS.
        assert_eq!(parse_status("VmHWM:\t 5 kB\nVmRSSx:\t 6 kB\n"), None);
        assert_eq!(
            parse_status("VmRSS:\t 7 kB\n"),
            Some(Memory {
                rss_kib: 7,
                anon_kib: None
            })
        );
        assert_eq!(parse_status("VmRSS:\t seven kB\n"), None);
        assert_eq!(parse_status("VmRSS:\t 7 MB\n"), None);
    }

    #[test]
    fn reads_the_open_files_soft_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
            Max cpu time              unlimited            unlimited            seconds   \n\
            Max open files            20000                524288               files     \n";
        assert_eq!(parse_open_files_limit(limits), Some(Some(20000)));
        let unlimited =
            "Max open files            unlimited            unlimited            files     \n";
        assert_eq!(parse_open_files_limit(unlimited), Some(None));
        assert_eq!(parse_open_files_limit("Max processes 10 10\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let m = memory(me).unwrap();
        assert!(m.rss_kib > 0);
        assert!(open_files_limit("self").is_ok());
    }
}
