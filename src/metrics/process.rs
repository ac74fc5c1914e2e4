//! The standard `process_*` metrics of the prober itself, read from
//! `/proc/self` at each scrape (Linux; elsewhere none are exported).

use super::registry::{write_descriptor, write_f64, write_sample, Collector};

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

/// The gauges of [`ProcessStats`], as (name, help), in
/// [`ProcessStats::gauges`] order.
pub(super) const GAUGES: [(&str, &str); 6] = [
    (
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
    ),
    (
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes",
    ),
    (
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds",
    ),
    ("process_threads", "Number of OS threads in the process"),
    ("process_open_fds", "Number of open file descriptors"),
    (
        "process_max_fds",
        "Maximum number of open file descriptors (the soft limit)",
    ),
];

impl ProcessStats {
    fn gauges(&self) -> [f64; 6] {
        [
            self.resident_memory_bytes,
            self.virtual_memory_bytes,
            self.start_time_seconds,
            self.threads,
            self.open_fds,
            self.max_fds,
        ]
    }
}

/// Writes [`ProcessStats`] at each scrape.
#[derive(Debug)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn collect(&self, out: &mut String) {
        let Some(p) = ProcessStats::read() else {
            return;
        };
        let cpu = "process_cpu_seconds";
        write_descriptor(
            out,
            cpu,
            "Total user and system CPU time spent in seconds",
            "counter",
        );
        write_sample(out, cpu, "_total", "", |o| write_f64(o, p.cpu_seconds));
        for ((name, help), value) in GAUGES.iter().zip(p.gauges()) {
            write_descriptor(out, name, help, "gauge");
            write_sample(out, name, "", "", |o| write_f64(o, value));
        }
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

    /// The family is written as it was through the `prometheus-client`
    /// crate: the same `# HELP` and `# TYPE` lines and sample names.
    #[test]
    fn the_family_is_what_prometheus_client_writes() {
        #[derive(Debug)]
        struct Theirs;
        impl prometheus_client::collector::Collector for Theirs {
            fn encode(
                &self,
                mut encoder: prometheus_client::encoding::DescriptorEncoder,
            ) -> Result<(), std::fmt::Error> {
                use prometheus_client::encoding::EncodeMetric;
                use prometheus_client::metrics::counter::ConstCounter;
                use prometheus_client::metrics::gauge::ConstGauge;
                let cpu = ConstCounter::new(1.0);
                cpu.encode(encoder.encode_descriptor(
                    "process_cpu_seconds",
                    "Total user and system CPU time spent in seconds",
                    None,
                    cpu.metric_type(),
                )?)?;
                for (name, help) in GAUGES {
                    let g = ConstGauge::new(1.0);
                    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
                }
                Ok(())
            }
        }
        let ours = super::super::registry::Registry::default();
        ours.collector(ProcessCollector);
        let mut theirs = prometheus_client::registry::Registry::default();
        theirs.register_collector(Box::new(Theirs));
        let mut expected = String::new();
        prometheus_client::encoding::text::encode(&mut expected, &theirs).expect("encodes");
        // Descriptors as they are; samples by name (the figures move).
        let shape = |text: &str| -> Vec<String> {
            text.lines()
                .map(|l| match l.starts_with('#') {
                    true => l.to_string(),
                    false => l.split(' ').next().unwrap_or_default().to_string(),
                })
                .collect()
        };
        assert_eq!(shape(&ours.render()), shape(&expected));
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
