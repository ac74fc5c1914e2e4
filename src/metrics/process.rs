//! The standard `process_*` metrics of the prober itself, read from
//! `/proc/self` at each scrape (Linux; elsewhere none are exported).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Linux's `USER_HZ`: the unit of the CPU times in `/proc/<pid>/stat` (100
/// on every architecture Linux reports to user space).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_memory_bytes: f64,
    pub virtual_memory_bytes: f64,
    pub start_time_seconds: f64,
    pub threads: f64,
    pub open_fds: f64,
    pub max_fds: f64,
}

impl ProcessStats {
    /// This process's figures, or `None` where `/proc` is not Linux's.
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()?
            .lines()
            .find_map(|l| {
                l.strip_prefix("Max open files")?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0);
        Self::parse(&stat, &status, boot_time, open_fds, max_fds)
    }

    fn parse(
        stat: &str,
        status: &str,
        boot_time: f64,
        open_fds: f64,
        max_fds: f64,
    ) -> Option<ProcessStats> {
        // The command name (field 2) may hold spaces and parentheses: the
        // fields to read come after its last `)`, starting with field 3.
        let fields: Vec<&str> = stat
            .get(stat.rfind(')')? + 1..)?
            .split_whitespace()
            .collect();
        let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
        let kb = |name: &str| -> Option<f64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
                .map(|v| v * 1024.0)
        };
        Some(ProcessStats {
            cpu_seconds: (field(14)? + field(15)?) / CLOCK_TICKS_PER_SECOND,
            threads: field(20)?,
            start_time_seconds: boot_time + field(22)? / CLOCK_TICKS_PER_SECOND,
            virtual_memory_bytes: field(23)?,
            resident_memory_bytes: kb("VmRSS")?,
            open_fds,
            max_fds,
        })
    }
}

/// Encodes [`ProcessStats`] at each scrape.
#[derive(Debug)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = ProcessStats::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                p.resident_memory_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                p.virtual_memory_bytes,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                p.start_time_seconds,
            ),
            (
                "process_threads",
                "Number of OS threads in the process",
                p.threads,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                p.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors (the soft limit)",
                p.max_fds,
            ),
        ] {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_a_hostile_command_name() {
        let stat = "4242 (sla (probe) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 17 0 123456 104857600 2000 18446744073709551615";
        let status = "Name:\tslaprobe\nVmRSS:\t   20480 kB\nThreads:\t17\n";
        let p = ProcessStats::parse(stat, status, 1_700_000_000.0, 12.0, 1024.0).expect("parses");
        assert_eq!(p.cpu_seconds, 3.25);
        assert_eq!(p.threads, 17.0);
        assert_eq!(p.start_time_seconds, 1_700_000_000.0 + 1234.56);
        assert_eq!(p.virtual_memory_bytes, 104_857_600.0);
        assert_eq!(p.resident_memory_bytes, 20_971_520.0);
        assert_eq!((p.open_fds, p.max_fds), (12.0, 1024.0));
        assert_eq!(ProcessStats::parse("garbage", status, 0.0, 0.0, 0.0), None);
    }

    #[test]
    fn reads_this_process() {
        let p = ProcessStats::read().expect("Linux /proc");
        assert!(p.resident_memory_bytes > 1e6 && p.threads >= 1.0 && p.open_fds >= 3.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        assert!(p.start_time_seconds <= now && p.start_time_seconds > now - 3600.0);
    }
}
