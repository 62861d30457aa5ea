//! CPU time used by this process (every thread, user and system), from `/proc/self/stat`, its
//! peak resident memory, from `/proc/self/status`, and the system's load average, from
//! `/proc/loadavg`.
//!
//! Invariant: on systems without `/proc` a reading is `None`, never a made-up zero. The
//! kernel reports these counters in `USER_HZ` ticks, which Linux fixes at 100 per second for
//! every architecture's user ABI, so the resolution is 10 ms.

use std::time::Duration;

/// Linux's `USER_HZ`.
const TICKS_PER_SECOND: u64 = 100;

/// User + system CPU time of this process so far.
pub(crate) fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat)
}

/// Reads utime and stime (fields 14 and 15) from a `/proc/PID/stat` line.
fn parse_stat(stat: &str) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may hold spaces: start after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field N is at index N - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = utime.checked_add(stime)?;
    Some(Duration::from_millis(
        ticks.checked_mul(1_000 / TICKS_PER_SECOND)?,
    ))
}

/// The most resident memory this process has held so far (`VmHWM`), in bytes.
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_hwm(&status)
}

/// The resident memory of this process now (`VmRSS`), in bytes.
pub(crate) fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_kb_field(&status, "VmRSS:")
}

fn parse_hwm(status: &str) -> Option<u64> {
    parse_kb_field(status, "VmHWM:")
}

fn parse_kb_field(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// The one-minute load average (runnable and waiting tasks, all processes).
pub(crate) fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    parse_loadavg(&text)
}

fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_past_the_command_name() {
        let line = "4242 (docaxis (x) y) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 9 0";
        assert_eq!(parse_stat(line), Some(Duration::from_millis(3_250)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_loadavg("0.52 1.10 2.00 3/410 9999\n"), Some(0.52));
        assert_eq!(parse_loadavg(""), None);
        assert_eq!(
            parse_hwm("Name:\tdocaxis\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(parse_hwm("Name: x\n"), None);
        if cfg!(target_os = "linux") {
            assert!(process_cpu_time().is_some());
            assert!(peak_rss_bytes().is_some_and(|b| b > 0));
        }
    }
}
