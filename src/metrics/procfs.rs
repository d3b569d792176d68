//! Parsers for the few `/proc` files the resource sampler reads.
//!
//! Pure functions of the file text, so they are tested on fixtures and cost no more than one
//! pass over the bytes. They do not open files or know about Prometheus (see `resources.rs`).
//! Where a file gives a unit (kB, 512-byte sectors, clock ticks, milliseconds) the parser
//! returns it untouched and says so; the sampler converts to base units.

/// The fields of `/proc/self/stat` the sampler uses. Times are in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessStat {
    pub user_ticks: u64,
    pub system_ticks: u64,
    pub threads: u64,
    pub start_ticks: u64,
    pub virtual_bytes: u64,
}

/// `/proc/self/stat`: the fields after the command name, which may itself hold spaces or
/// parentheses, so the split starts after the last `)`.
pub fn process_stat(text: &str) -> Option<ProcessStat> {
    let after = text.get(text.rfind(')')? + 1..)?;
    // Field 3 (state) is index 0 here; utime is field 14, so index 11.
    let fields: Vec<&str> = after.split_ascii_whitespace().collect();
    let number = |index: usize| fields.get(index).and_then(|f| f.parse::<u64>().ok());
    Some(ProcessStat {
        user_ticks: number(11)?,
        system_ticks: number(12)?,
        threads: number(17)?,
        start_ticks: number(19)?,
        virtual_bytes: number(20)?,
    })
}

/// The value of a `Key:   1234 kB` line, as the number before the unit.
fn keyed_number(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_ascii_whitespace().next()?.parse().ok()
    })
}

/// Resident set size from `/proc/self/status`, in kB (`VmRSS`).
pub fn status_resident_kb(text: &str) -> Option<u64> {
    keyed_number(text, "VmRSS")
}

/// The soft limit on open files from `/proc/self/limits`; `None` when unlimited or absent.
pub fn limits_max_open_files(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.get("Max open files".len()..)?
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Host CPU time by mode from the first line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

/// What the sampler takes from `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostStat {
    pub cpu: CpuTicks,
    /// Number of `cpuN` lines: the CPUs online.
    pub cpus: u64,
    /// Boot time, seconds since the epoch.
    pub boot_time: Option<u64>,
}

/// `/proc/stat`. Guest time is already counted in user and nice, so it is left out.
pub fn host_stat(text: &str) -> Option<HostStat> {
    let mut stat = HostStat::default();
    let mut seen_total = false;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        match fields.next() {
            Some("cpu") => {
                let mut next = || fields.next().and_then(|f| f.parse::<u64>().ok());
                stat.cpu = CpuTicks {
                    user: next()?,
                    nice: next()?,
                    system: next()?,
                    idle: next()?,
                    iowait: next().unwrap_or(0),
                    irq: next().unwrap_or(0),
                    softirq: next().unwrap_or(0),
                    steal: next().unwrap_or(0),
                };
                seen_total = true;
            }
            Some(name) if name.starts_with("cpu") => stat.cpus += 1,
            Some("btime") => stat.boot_time = fields.next().and_then(|f| f.parse().ok()),
            _ => {}
        }
    }
    seen_total.then_some(stat)
}

/// Memory from `/proc/meminfo`, in kB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    pub total_kb: u64,
    pub available_kb: u64,
}

/// `/proc/meminfo`. Kernels before 3.14 have no `MemAvailable`; `MemFree` stands in.
pub fn meminfo(text: &str) -> Option<MemInfo> {
    Some(MemInfo {
        total_kb: keyed_number(text, "MemTotal")?,
        available_kb: keyed_number(text, "MemAvailable")
            .or_else(|| keyed_number(text, "MemFree"))?,
    })
}

/// `/proc/loadavg`: the 1, 5 and 15 minute load averages.
pub fn loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_ascii_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// One whole disk from `/proc/diskstats`. Sectors are 512 bytes whatever the device's own
/// sector size; `io_millis` is time spent doing I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskLine {
    pub device: String,
    pub reads: u64,
    pub read_sectors: u64,
    pub writes: u64,
    pub written_sectors: u64,
    pub io_millis: u64,
}

/// Whether `name` is a whole disk worth a label: not a partition (`sda1`, `vda2`,
/// `nvme0n1p1`, `mmcblk0p1`) and not a loop, RAM or floppy device.
pub fn is_whole_disk(name: &str) -> bool {
    let digits_after = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
    };
    if ["loop", "ram", "zram", "fd"]
        .iter()
        .any(|p| digits_after(p))
    {
        return false;
    }
    // nvme0n1p1, mmcblk0p1, md0p1: a `p` then digits after a digit.
    if let Some(at) = name.rfind('p') {
        let (head, tail) = name.split_at(at);
        let tail = tail.get(1..).unwrap_or("");
        if head.ends_with(|c: char| c.is_ascii_digit())
            && !tail.is_empty()
            && tail.bytes().all(|b| b.is_ascii_digit())
        {
            return false;
        }
    }
    // sda1, vdb2, hda3, xvda1: letters-d-letters then digits.
    for prefix in ["sd", "vd", "hd", "xvd"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            let digits = rest.get(letters..).unwrap_or("");
            if letters > 0 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
        }
    }
    true
}

/// `/proc/diskstats`, whole disks only, at most `limit` of them in file order.
pub fn diskstats(text: &str, limit: usize) -> Vec<DiskLine> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let device = *fields.get(2)?;
            if !is_whole_disk(device) {
                return None;
            }
            let number = |index: usize| fields.get(index).and_then(|f| f.parse::<u64>().ok());
            Some(DiskLine {
                device: device.to_string(),
                reads: number(3)?,
                read_sectors: number(5)?,
                writes: number(7)?,
                written_sectors: number(9)?,
                io_millis: number(12)?,
            })
        })
        .take(limit)
        .collect()
}

/// One interface from `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceLine {
    pub interface: String,
    pub receive_bytes: u64,
    pub receive_packets: u64,
    pub transmit_bytes: u64,
    pub transmit_packets: u64,
}

/// `/proc/net/dev`, at most `limit` interfaces in file order. Container-side `veth` pairs are
/// left out: a host running many containers has one per container, an unbounded set.
pub fn net_dev(text: &str, limit: usize) -> Vec<InterfaceLine> {
    text.lines()
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let name = name.trim();
            if name.is_empty() || name.contains('|') || name.starts_with("veth") {
                return None;
            }
            let fields: Vec<u64> = counters
                .split_ascii_whitespace()
                .map(|f| f.parse::<u64>().ok())
                .collect::<Option<Vec<u64>>>()?;
            Some(InterfaceLine {
                interface: name.to_string(),
                receive_bytes: *fields.first()?,
                receive_packets: *fields.get(1)?,
                transmit_bytes: *fields.get(8)?,
                transmit_packets: *fields.get(9)?,
            })
        })
        .take(limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_stat_survives_a_command_name_with_spaces_and_parentheses() {
        let text = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 987654321 2048 18446744073709551615 \
                    1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = process_stat(text).unwrap();
        assert_eq!(
            stat,
            ProcessStat {
                user_ticks: 250,
                system_ticks: 75,
                threads: 9,
                start_ticks: 123456,
                virtual_bytes: 987654321,
            }
        );
    }

    #[test]
    fn truncated_process_stat_is_rejected() {
        assert_eq!(process_stat("1 (x) S 1 2 3"), None);
        assert_eq!(process_stat("no parenthesis"), None);
    }

    #[test]
    fn status_and_limits_give_rss_and_the_soft_fd_limit() {
        let status = "Name:\tsluice\nVmSize:\t  123456 kB\nVmRSS:\t   20480 kB\nThreads:\t9\n";
        assert_eq!(status_resident_kb(status), Some(20480));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             63704                63704                processes\n\
                      Max open files            1024                 1048576              files\n";
        assert_eq!(limits_max_open_files(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(limits_max_open_files(unlimited), None);
    }

    #[test]
    fn host_stat_reads_modes_cpus_and_boot_time() {
        let text = "cpu  10 1 20 300 4 5 6 7 8 9\ncpu0 5 0 10 150 2 2 3 3 4 4\n\
                    cpu1 5 1 10 150 2 3 3 4 4 5\nintr 1 2 3\nbtime 1700000000\nprocesses 99\n";
        let stat = host_stat(text).unwrap();
        assert_eq!(stat.cpus, 2);
        assert_eq!(stat.boot_time, Some(1_700_000_000));
        assert_eq!(
            stat.cpu,
            CpuTicks {
                user: 10,
                nice: 1,
                system: 20,
                idle: 300,
                iowait: 4,
                irq: 5,
                softirq: 6,
                steal: 7,
            }
        );
        assert_eq!(host_stat("intr 1 2\n"), None);
    }

    #[test]
    fn meminfo_prefers_available_and_falls_back_to_free() {
        let text = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(
            meminfo(text),
            Some(MemInfo {
                total_kb: 16_000_000,
                available_kb: 8_000_000
            })
        );
        let old = "MemTotal: 100 kB\nMemFree: 40 kB\n";
        assert_eq!(meminfo(old).map(|m| m.available_kb), Some(40));
    }

    #[test]
    fn loadavg_reads_three_windows() {
        assert_eq!(
            loadavg("0.52 0.58 1.50 1/467 12345\n"),
            Some([0.52, 0.58, 1.5])
        );
        assert_eq!(loadavg("0.5\n"), None);
    }

    #[test]
    fn partitions_loop_and_ram_devices_are_not_whole_disks() {
        for whole in [
            "sda", "vda", "xvdb", "nvme0n1", "mmcblk0", "dm-0", "md0", "sr0",
        ] {
            assert!(is_whole_disk(whole), "{whole}");
        }
        for part in [
            "sda1",
            "vda2",
            "xvdb3",
            "nvme0n1p1",
            "mmcblk0p2",
            "loop0",
            "ram1",
            "zram0",
            "fd0",
        ] {
            assert!(!is_whole_disk(part), "{part}");
        }
    }

    #[test]
    fn diskstats_keeps_whole_disks_up_to_the_limit() {
        let text = "   7       0 loop0 9 0 9 0 0 0 0 0 0 0 0\n\
                    254       0 vda 209264 32477 15138058 13552396 32342 49988 25876808 370267 0 431220 13975854 1 2 3 4\n\
                    254       1 vda1 100 0 800 0 0 0 0 0 0 0 0\n\
                    259       0 nvme0n1 1 0 8 0 2 0 16 0 0 30 0\n";
        let disks = diskstats(text, 16);
        assert_eq!(disks.len(), 2);
        assert_eq!(
            disks.first(),
            Some(&DiskLine {
                device: "vda".into(),
                reads: 209264,
                read_sectors: 15138058,
                writes: 32342,
                written_sectors: 25876808,
                io_millis: 431220,
            })
        );
        assert_eq!(diskstats(text, 1).len(), 1);
    }

    #[test]
    fn net_dev_skips_headers_and_veth_and_reads_glued_counters() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
                    face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                    lo: 5375 97 0 0 0 0 0 0 5375 97 0 0 0 0 0 0\n  \
                    eth0:273659009   14220    0    0    0     0          0         0   833564    8069    0    0    0     0       0          0\n\
                    veth12ab: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n";
        let interfaces = net_dev(text, 16);
        assert_eq!(interfaces.len(), 2);
        assert_eq!(
            interfaces.get(1),
            Some(&InterfaceLine {
                interface: "eth0".into(),
                receive_bytes: 273659009,
                receive_packets: 14220,
                transmit_bytes: 833564,
                transmit_packets: 8069,
            })
        );
    }
}
