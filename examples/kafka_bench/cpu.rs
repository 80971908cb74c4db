//! CPU time per thread group, from `/proc/self/task/*/stat`.

use super::*;

/// CPU seconds used so far by each thread of this process, by thread name
/// (`/proc/self/task/*/stat`, in clock ticks of 1/100 s).
pub(crate) fn thread_cpu() -> HashMap<u64, (String, f64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(tid) = e.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_owned();
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        // Fields 14 and 15 (utime, stime) are 11 and 12 after the comm.
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        out.insert(tid, (comm, (ticks(11) + ticks(12)) / 100.0));
    }
    out
}

/// CPU used between two `thread_cpu` snapshots, by thread-name group.
pub(crate) fn cpu_between(
    before: &HashMap<u64, (String, f64)>,
    after: &HashMap<u64, (String, f64)>,
) -> Vec<(String, f64)> {
    let mut groups: HashMap<String, f64> = HashMap::new();
    for (tid, (comm, secs)) in after {
        let was = before.get(tid).map_or(0.0, |b| b.1);
        let group = if comm.starts_with("tripline") {
            comm.clone()
        } else if let Some(rest) = comm.strip_prefix("rdk:") {
            format!(
                "rdk:{}",
                rest.split(|c: char| !c.is_ascii_alphabetic())
                    .next()
                    .unwrap_or("")
            )
        } else {
            comm.clone()
        };
        *groups.entry(group).or_default() += secs - was;
    }
    let mut v: Vec<(String, f64)> = groups.into_iter().filter(|g| g.1 > 0.005).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

pub(crate) fn print_cpu(name: &str, n: u64, wall_s: f64, groups: &[(String, f64)]) {
    let total: f64 = groups.iter().map(|g| g.1).sum();
    let list: Vec<String> = groups
        .iter()
        .take(8)
        .map(|(g, s)| format!("{g} {s:.1}"))
        .collect();
    println!(
        "  {name}: {total:.1} CPU-s in {wall_s:.1} s wall ({:.2} cores busy), {:.0} events per CPU-second (whole process: producer, broker, consumer); by thread: {}",
        total / wall_s.max(1e-9),
        n as f64 / total.max(1e-9),
        list.join(", ")
    );
}
