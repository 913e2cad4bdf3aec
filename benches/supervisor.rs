//! Supervisor benchmark (`cargo bench --bench supervisor`): runs the real release binary as PID 1 of a
//! PID namespace (root, `unshare`) and reports medians over repeated runs, each next to a baseline
//! measured in the same run on the same machine, because these machines are noisy.
//!
//! Measured: stripped binary size; PID 1 RSS with 50 units running; crash-to-restart latency (first
//! restart, which has no delay) against a bare fork+exec; time to start 1,000 trivial units in a random
//! DAG and to stop them, against spawning and killing 1,000 processes from a plain loop.
//! `LIFSEA_BENCH_RUNS` sets the repetitions (default 5); `LIFSEA_BENCH_BIN` runs another build of
//! the init; `LIFSEA_BENCH_BIN_OLD` adds a second build to the DAG rounds (before and after in one
//! session); `LIFSEA_BENCH_ONLY=dag` runs only the DAG benchmark.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BUILT: &str = env!("CARGO_BIN_EXE_lifsea-init");

/// The init under test: this build's, or `LIFSEA_BENCH_BIN`.
fn bin() -> String {
    std::env::var("LIFSEA_BENCH_BIN").unwrap_or_else(|_| BUILT.to_string())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// A small deterministic generator so the DAG is the same on every run.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

struct Init {
    child: Child,
    dir: PathBuf,
}

impl Init {
    fn start(tag: &str, units: &[(String, String)]) -> Init {
        Init::start_with(&bin(), tag, units)
    }

    fn start_with(bin: &str, tag: &str, units: &[(String, String)]) -> Init {
        let dir = std::env::temp_dir().join(format!("lifsea-bench-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("units")).expect("units dir");
        fs::create_dir_all(dir.join("run")).expect("run dir");
        for (name, body) in units {
            fs::write(dir.join("units").join(format!("{name}.toml")), body).expect("write unit");
        }
        let child = Command::new("unshare")
            .args([
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child",
                bin,
                "--container",
                "--units",
            ])
            .arg(dir.join("units"))
            .arg("--run-dir")
            .arg(dir.join("run"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn unshare");
        Init { child, dir }
    }

    /// The init's pid on the host: the only child of `unshare`.
    fn host_pid(&self) -> Option<u32> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let p = format!("/proc/{0}/task/{0}/children", self.child.id());
            if let Ok(s) = fs::read_to_string(&p) {
                if let Some(pid) = s.split_whitespace().next().and_then(|x| x.parse().ok()) {
                    return Some(pid);
                }
            }
            sleep(Duration::from_millis(2));
        }
        None
    }

    /// Waits for boot-timeline.json; returns (supervise start, boot complete) in microseconds.
    fn wait_boot(&self, limit: Duration) -> Option<(u64, u64)> {
        let path = self.dir.join("run/boot-timeline.json");
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(text) = fs::read_to_string(&path) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    return stamps(&v);
                }
            }
            sleep(Duration::from_millis(5));
        }
        None
    }

    /// SIGTERM, then the time until the init has exited.
    fn stop(mut self) -> Duration {
        let t = Instant::now();
        if let Some(pid) = self.host_pid() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            sleep(Duration::from_millis(1));
        }
        let d = t.elapsed();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
        d
    }
}

fn stamps(v: &serde_json::Value) -> Option<(u64, u64)> {
    let entries = v
        .get("timeline")
        .or_else(|| v.get("entries"))
        .unwrap_or(v)
        .as_array()?;
    let mut start = None;
    let mut done = None;
    for e in entries {
        let at = e.get("at_us")?.as_u64()?;
        match (e.get("kind")?.as_str()?, e.get("event")?.as_str()?) {
            ("stage", "start") if start.is_none() => start = Some(at),
            (_, "boot-complete") => done = Some(at),
            _ => {}
        }
    }
    Some((start?, done?))
}

fn rss_kb(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn sleeper(extra: &str) -> String {
    format!("exec = [\"/bin/sleep\", \"100000\"]\nready = \"exec\"\nrestart = \"no\"\n{extra}")
}

fn bench_size() {
    let size = fs::metadata(bin()).map(|m| m.len()).unwrap_or(0);
    let out = Command::new("file").arg(bin()).output();
    let kind = out
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    println!(
        "binary size: {size} bytes ({:.2} MB; issue 11 budget 2.0 MB) static={}",
        size as f64 / 1_048_576.0,
        kind.contains("static")
    );
}

fn bench_rss(runs: usize) {
    let mut rss = Vec::new();
    for _ in 0..runs {
        let units: Vec<_> = (0..50).map(|i| (format!("s{i}"), sleeper(""))).collect();
        let init = Init::start("rss", &units);
        if init.wait_boot(Duration::from_secs(30)).is_some() {
            sleep(Duration::from_millis(200));
            if let Some(kb) = init.host_pid().and_then(rss_kb) {
                rss.push(kb as f64);
            }
        }
        init.stop();
    }
    // Baseline: a static process doing nothing, to show the floor the kernel charges any process.
    let mut base = Vec::new();
    for _ in 0..runs {
        if let Ok(mut c) = Command::new("/bin/sleep").arg("5").spawn() {
            sleep(Duration::from_millis(50));
            if let Some(kb) = rss_kb(c.id()) {
                base.push(kb as f64);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    let (m, b) = (median(&mut rss), median(&mut base));
    println!("PID 1 RSS with 50 units: median {m:.0} kB (target 2048 kB); /bin/sleep baseline {b:.0} kB; ratio {:.1}x", m / b);
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn bench_restart(runs: usize) {
    let body =
        "exec = [\"/bin/sh\", \"-c\", \"date +%s%N >> \\\"$STAMPS\\\"; exec sleep 100000\"]\n\
                ready = \"exec\"\nrestart = \"always\"\nrestart-reset-after = \"1s\"\n";
    let dir = std::env::temp_dir().join(format!("lifsea-bench-stamps-{}", std::process::id()));
    let _ = fs::create_dir_all(&dir);
    let stamps_file = dir.join("stamps");
    let _ = fs::remove_file(&stamps_file);
    let body = format!("{body}env = {{ STAMPS = \"{}\" }}\n", stamps_file.display());
    let init = Init::start("restart", &[("crashy".to_string(), body)]);
    let mut lat = Vec::new();
    if init.wait_boot(Duration::from_secs(30)).is_some() {
        for _ in 0..runs {
            // Let the run count as stable so this crash gets the immediate first restart.
            sleep(Duration::from_millis(1200));
            let before = count_lines(&stamps_file);
            let Some(pid) = main_pid_of(&init) else { break };
            let t0 = now_ns();
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while count_lines(&stamps_file) == before && Instant::now() < deadline {
                sleep(Duration::from_micros(200));
            }
            if let Some(t1) = last_stamp(&stamps_file) {
                lat.push((t1.saturating_sub(t0)) as f64 / 1e6);
            }
        }
    }
    init.stop();
    // Baseline: the same shell command started directly by a fork+exec from here.
    let mut base = Vec::new();
    for _ in 0..runs {
        let t0 = now_ns();
        let out = Command::new("/bin/sh").args(["-c", "date +%s%N"]).output();
        if let Ok(o) = out {
            if let Ok(t1) = String::from_utf8_lossy(&o.stdout).trim().parse::<u128>() {
                base.push(t1.saturating_sub(t0) as f64 / 1e6);
            }
        }
    }
    let _ = fs::remove_dir_all(&dir);
    let (m, b) = (median(&mut lat), median(&mut base));
    println!("crash-to-restart (SIGKILL to new process running): median {m:.2} ms over {} crashes; fork+exec baseline {b:.2} ms; ratio {:.1}x", lat.len(), m / b);
}

fn count_lines(p: &Path) -> usize {
    fs::read_to_string(p)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn last_stamp(p: &Path) -> Option<u128> {
    fs::read_to_string(p)
        .ok()?
        .lines()
        .last()?
        .trim()
        .parse()
        .ok()
}

/// The `sleep` process (the unit's main process after `exec`) inside the namespace, by host pid.
fn main_pid_of(init: &Init) -> Option<u32> {
    let ipid = init.host_pid()?;
    let children = fs::read_to_string(format!("/proc/{ipid}/task/{ipid}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .find(|p: &u32| {
            fs::read_to_string(format!("/proc/{p}/comm"))
                .map(|c| c.trim() == "sleep")
                .unwrap_or(false)
        })
}

fn dag_units(n: usize, seed: u64) -> Vec<(String, String)> {
    let mut rng = XorShift(seed);
    (0..n)
        .map(|i| {
            let mut deps = Vec::new();
            if i > 0 {
                for _ in 0..(rng.next() % 3) {
                    deps.push(format!("\"u{}\"", rng.next() as usize % i));
                }
            }
            deps.sort();
            deps.dedup();
            (
                format!("u{i}"),
                sleeper(&format!("requires = [{}]\n", deps.join(", "))),
            )
        })
        .collect()
}

/// On-CPU time of one task in milliseconds (`/proc/PID/schedstat`, first field, nanoseconds):
/// exact, unlike the clock ticks of `/proc/PID/stat`, which round each short-lived child to 0.
fn cpu_ms(pid: u32) -> f64 {
    fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e6)
}

/// On-CPU time of this thread so far, in milliseconds.
fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live timespec the kernel fills in.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Time the children get to finish their own start-up (exec, the dynamic loader) before their
/// CPU time is read, in both variants alike.
const SETTLE: Duration = Duration::from_millis(300);

/// One figure of one variant: wall time, and CPU time of the starter plus its children.
#[derive(Default)]
struct Figures {
    wall: Vec<f64>,
    cpu: Vec<f64>,
    /// The starter's own share of `cpu` (the init, or the bench's loop).
    own_cpu: Vec<f64>,
    stop: Vec<f64>,
    /// Wall and CPU against the baseline of the same round.
    round_ratio: Vec<f64>,
    round_cpu_ratio: Vec<f64>,
}

/// Starts 1,000 units under the init `bin`; wall is the init's own span from the supervise
/// stage's start (before it loads the unit files) to boot complete; CPU is the init's and its
/// children's on-CPU time by then (the init's includes loading and parsing the 1,000 files).
fn dag_once(bin: &str, seed: u64) -> Option<Sample> {
    let init = Init::start_with(bin, "dag", &dag_units(1000, seed));
    let spans = init.wait_boot(Duration::from_secs(120));
    let (mut own, mut cpu) = (0.0, 0.0);
    if spans.is_some() {
        sleep(SETTLE);
        if let Some(pid) = init.host_pid() {
            own = cpu_ms(pid);
            cpu = own + children(pid).into_iter().map(cpu_ms).sum::<f64>();
        }
    }
    let stop = init.stop().as_secs_f64() * 1000.0;
    let (s, d) = spans?;
    Some(Sample {
        wall: (d - s) as f64 / 1000.0,
        cpu,
        own,
        stop,
    })
}

/// One run of one variant, in milliseconds.
struct Sample {
    wall: f64,
    cpu: f64,
    own: f64,
    stop: f64,
}

impl Figures {
    fn push(&mut self, s: &Sample) {
        self.wall.push(s.wall);
        self.cpu.push(s.cpu);
        self.own_cpu.push(s.own);
        self.stop.push(s.stop);
    }
}

fn children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect()
}

/// The bare loop: 1,000 `sleep`s started by `Command::spawn` (posix_spawn: vfork semantics, no
/// pipes, no cgroups, no unit files); CPU is this thread's plus the children's. Each child gets
/// the environment a unit gets (PATH and NOTIFY_SOCKET), not cargo's hundred variables, which
/// would make every baseline exec (and the dynamic loader after it) dearer than a unit's.
fn baseline_once() -> Sample {
    let c0 = thread_cpu_ms();
    let t = Instant::now();
    let mut kids: Vec<Child> = (0..1000)
        .filter_map(|_| {
            Command::new("/bin/sleep")
                .arg("100000")
                .env_clear()
                .env("PATH", lifsea_init::supervisor::spawn::DEFAULT_PATH)
                .env("NOTIFY_SOCKET", "/tmp/lifsea-bench-run/notify.sock")
                .spawn()
                .ok()
        })
        .collect();
    let wall = t.elapsed().as_secs_f64() * 1000.0;
    let own = thread_cpu_ms() - c0;
    sleep(SETTLE);
    let cpu = own + kids.iter().map(|k| cpu_ms(k.id())).sum::<f64>();
    let t = Instant::now();
    for k in kids.iter_mut() {
        let _ = k.kill();
    }
    for k in kids.iter_mut() {
        let _ = k.wait();
    }
    Sample {
        wall,
        cpu,
        own,
        stop: t.elapsed().as_secs_f64() * 1000.0,
    }
}

/// Baseline and init runs interleaved within one process run (the order alternating each
/// round), so that a change in the machine's load hits both alike; `LIFSEA_BENCH_BIN_OLD` adds a
/// second build of the init to every round (before/after in one session).
fn bench_dag(runs: usize) {
    let mut variants: Vec<(String, String)> = vec![("init".into(), bin())];
    if let Ok(old) = std::env::var("LIFSEA_BENCH_BIN_OLD") {
        variants.push(("old init".into(), old));
    }
    let mut base = Figures::default();
    let mut inits: Vec<Figures> = variants.iter().map(|_| Figures::default()).collect();
    let load_before = load_average();
    for r in 0..runs {
        // Rotate which variant goes first: the first of a round finds the machine warmest.
        let n = variants.len() + 1;
        let mut round: Vec<Option<(f64, f64)>> = vec![None; variants.len()];
        let mut round_base = None;
        for k in 0..n {
            let slot = (k + r) % n;
            if slot == 0 {
                let b = baseline_once();
                eprintln!(
                    "round {r}: baseline {:.0} ms wall, {:.0} ms cpu ({:.0} own)",
                    b.wall, b.cpu, b.own
                );
                base.push(&b);
                round_base = Some((b.wall, b.cpu));
                continue;
            }
            let (name, path) = &variants[slot - 1];
            match dag_once(path, 0x5eed + r as u64) {
                Some(d) => {
                    eprintln!(
                        "round {r}: {name} {:.0} ms wall, {:.0} ms cpu ({:.0} own)",
                        d.wall, d.cpu, d.own
                    );
                    inits[slot - 1].push(&d);
                    round[slot - 1] = Some((d.wall, d.cpu));
                }
                None => eprintln!("round {r}: {name}: no boot-timeline.json within 120 s"),
            }
        }
        for (f, v) in inits.iter_mut().zip(round) {
            if let (Some((w, c)), Some((bw, bc))) = (v, round_base) {
                f.round_ratio.push(w / bw);
                f.round_cpu_ratio.push(c / bc);
            }
        }
    }
    let load_after = load_average();
    let (bw, bc, bo, bs) = (
        median(&mut base.wall),
        median(&mut base.cpu),
        median(&mut base.own_cpu),
        median(&mut base.stop),
    );
    println!(
        "1,000-unit random DAG, {runs} rounds interleaved; load average {load_before} before, {load_after} after"
    );
    println!("  plain-loop spawn baseline: wall median {bw:.0} ms, cpu median {bc:.0} ms (the loop's own {bo:.0} ms)");
    for ((name, path), f) in variants.iter().zip(inits.iter_mut()) {
        let (w, c, o, s) = (
            median(&mut f.wall),
            median(&mut f.cpu),
            median(&mut f.own_cpu),
            median(&mut f.stop),
        );
        println!(
            "  {name} ({path}): start wall median {w:.0} ms, ratio {:.2}x (target 1.15x); cpu median {c:.0} ms (the init's own {o:.0} ms), ratio {:.2}x",
            w / bw,
            c / bc
        );
        println!(
            "  {name}: median of the rounds' own ratios: wall {:.2}x, cpu {:.2}x",
            median(&mut f.round_ratio),
            median(&mut f.round_cpu_ratio)
        );
        println!("  {name}: stop (SIGTERM to exit) median {s:.0} ms, plain kill+reap baseline {bs:.0} ms, ratio {:.2}x", s / bs);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass other flags: only run for bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runs: usize = std::env::var("LIFSEA_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    if std::env::var("LIFSEA_BENCH_ONLY").is_ok_and(|v| v == "dag") {
        bench_dag(runs);
        return;
    }
    bench_size();
    bench_rss(runs);
    bench_restart(runs.max(5));
    bench_dag(runs);
}
