//! The network subsystem against a real DHCP server: dnsmasq in a network namespace of its own,
//! joined by veth pairs to the namespace where lifsea-init runs (container mode, `--net FILE`,
//! PID 1 of its own PID namespace). Needs root, `ip` and dnsmasq (tests/setup.sh installs them).
//! Every address used lives only inside the namespaces these tests create.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Ns;

const T: Duration = Duration::from_secs(20);

/// Two network namespaces (client: the init; server: dnsmasq) and the veth pairs between them,
/// removed on drop.
struct Lab {
    client: String,
    server: String,
    dir: PathBuf,
    dnsmasq: Option<Child>,
    tag: String,
    pairs: usize,
}

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Lab {
    fn new(tag: &str) -> Lab {
        assert!(
            nix::unistd::geteuid().is_root(),
            "ns_net tests need root (network namespaces, veth pairs)"
        );
        let id = format!("{tag}{}", std::process::id() % 100_000);
        let lab = Lab {
            client: format!("lifsea-c-{id}"),
            server: format!("lifsea-s-{id}"),
            dir: std::env::temp_dir().join(format!("lifsea-netlab-{id}")),
            dnsmasq: None,
            tag: id,
            pairs: 0,
        };
        let _ = std::fs::remove_dir_all(&lab.dir);
        std::fs::create_dir_all(&lab.dir).unwrap();
        run(&["ip", "netns", "add", &lab.client]);
        run(&["ip", "netns", "add", &lab.server]);
        run(&["ip", "-n", &lab.server, "link", "set", "lo", "up"]);
        lab
    }

    /// A veth pair: `client_name` in the client namespace (left down: the init brings it up),
    /// the server end up with `server_cidr`. Returns the server end's name.
    fn veth(&mut self, client_name: &str, server_cidr: &str) -> String {
        self.pairs += 1;
        let (a, b) = (
            format!("c{}{}", self.pairs, self.tag),
            format!("s{}{}", self.pairs, self.tag),
        );
        run(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]);
        run(&["ip", "link", "set", &a, "netns", &self.client]);
        run(&[
            "ip",
            "-n",
            &self.client,
            "link",
            "set",
            &a,
            "name",
            client_name,
        ]);
        run(&["ip", "link", "set", &b, "netns", &self.server]);
        run(&[
            "ip",
            "-n",
            &self.server,
            "addr",
            "add",
            server_cidr,
            "dev",
            &b,
        ]);
        run(&["ip", "-n", &self.server, "link", "set", &b, "up"]);
        b
    }

    /// Starts dnsmasq (DHCP only, no DNS) in the server namespace on `ifaces`.
    fn dnsmasq(&mut self, ifaces: &[&str], args: &[&str]) {
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &self.server,
            "dnsmasq",
            "--keep-in-foreground",
        ])
        .args([
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--port=0",
        ])
        .arg("--bind-interfaces")
        .arg("--log-dhcp")
        .arg(format!(
            "--log-facility={}",
            self.dir.join("dnsmasq.log").display()
        ))
        .arg(format!(
            "--dhcp-leasefile={}",
            self.dir.join("dnsmasq.leases").display()
        ))
        .arg(format!(
            "--pid-file={}",
            self.dir.join("dnsmasq.pid").display()
        ));
        for i in ifaces {
            c.arg(format!("--interface={i}"));
        }
        c.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = std::fs::remove_file(self.dir.join("dnsmasq.pid"));
        self.dnsmasq = Some(c.spawn().unwrap());
        // Serving once its pid file exists (written after the sockets are bound).
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.dir.join("dnsmasq.pid").exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop_dnsmasq(&mut self) {
        if let Some(mut c) = self.dnsmasq.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn dnsmasq_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dnsmasq.log")).unwrap_or_default()
    }

    /// `ip -n CLIENT args...`
    fn ip(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "-n", &self.client];
        v.extend_from_slice(args);
        run(&v)
    }

    /// An init in the client namespace with this network.toml and these units.
    fn init(&self, name: &str, network_toml: &str, units: &[(&str, &str)]) -> Ns {
        let mut ns = Ns::new(name);
        let cfg = ns.root.join("network.toml");
        std::fs::write(&cfg, network_toml).unwrap();
        for (n, text) in units {
            ns.unit(n, text);
        }
        ns.prefix = format!("ip netns exec {} ", self.client);
        ns.extra_args = format!("--net {}", cfg.display());
        ns
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_dnsmasq();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.client])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.server])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const ONLINE_UNIT: &str = r#"type = "oneshot"
requires = ["network-online"]
exec = ["/bin/sh", "-c", "cat /proc/net/route > @OUT@/online"]
"#;

fn wait_file(ns: &Ns, file: &str, timeout: Duration) -> bool {
    ns.wait_for(timeout, || ns.out.join(file).exists())
}

/// The link-up → lease-bound time the init logged, in ms.
fn bound_ms(log: &str, link: &str) -> Option<u64> {
    let needle = format!("net: {link}: link up to lease bound in ");
    let at = log.find(&needle)? + needle.len();
    log[at..].split(' ').next()?.parse().ok()
}

#[test]
fn ns_net_dhcp_lease_routes_dns_and_option_121() {
    let mut lab = Lab::new("dhcp");
    let s = lab.veth("eth0", "10.77.0.1/24");
    // Option 3 names 10.77.0.2; option 121 must win (RFC 3442) with its default via 10.77.0.1.
    lab.dnsmasq(
        &[&s],
        &[
            "--dhcp-range=10.77.0.50,10.77.0.99,255.255.255.0,1h",
            "--dhcp-option=3,10.77.0.2",
            "--no-ping",
            "--dhcp-option=6,10.77.0.53,10.77.0.54",
            "--dhcp-option=119,lab.example,corp.example",
            "--dhcp-option=121,192.168.77.0/24,10.77.0.254,0.0.0.0/0,10.77.0.1",
            "--dhcp-authoritative",
        ],
    );
    let mut ns = lab.init(
        "net-dhcp",
        "[[link]]\nname = \"eth0\"\n",
        &[("after-online", ONLINE_UNIT)],
    );
    let t0 = Instant::now();
    ns.start();
    assert!(
        wait_file(&ns, "online", T),
        "{}\n{}",
        ns.log(),
        lab.dnsmasq_log()
    );
    let online_ms = t0.elapsed().as_millis();
    let addr = lab.ip(&["-4", "addr", "show", "dev", "eth0"]);
    assert!(addr.contains("inet 10.77.0."), "{addr}");
    assert!(addr.contains("/24 brd 10.77.0.255"), "{addr}");
    let routes = lab.ip(&["-4", "route"]);
    assert!(
        routes.contains("default via 10.77.0.1 dev eth0 proto dhcp"),
        "{routes}"
    );
    assert!(
        routes.contains("192.168.77.0/24 via 10.77.0.254 dev eth0 proto dhcp"),
        "{routes}"
    );
    assert!(
        !routes.contains("10.77.0.2 "),
        "option 3 ignored beside option 121: {routes}"
    );
    let resolv = std::fs::read_to_string(ns.run.join("resolv.conf")).unwrap();
    assert_eq!(
        resolv,
        "# Written by lifsea-init from DHCP and network.toml.\n\
         nameserver 10.77.0.53\nnameserver 10.77.0.54\nsearch lab.example corp.example\n"
    );
    // The unit ordered after network-online saw the default route.
    assert!(
        ns.read("online").contains("eth0\t00000000\t"),
        "{}",
        ns.read("online")
    );
    // The lease is remembered for INIT-REBOOT.
    let saved = std::fs::read_to_string(ns.run.join("leases/dhcp-eth0.lease")).unwrap();
    assert!(saved.contains("\"address\": \"10.77.0."), "{saved}");
    // initctl net shows it.
    let (code, out, err) = common::control::initctl_as(&ns.run, &["net"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("network-online: reached"), "{out}");
    assert!(out.contains("LEASE    eth0 10.77.0."), "{out}");
    assert!(
        out.contains("from 10.77.0.1, T1 +1800s T2 +3150s expiry +3600s"),
        "{out}"
    );
    let ms = bound_ms(&ns.log(), "eth0").expect("link up to lease bound logged");
    println!(
        "MEASURE link-up -> lease-bound {ms} ms; start -> network-online unit done {online_ms} ms"
    );
    ns.stop(T);
    let tl = std::fs::read_to_string(ns.run.join("boot-timeline.json")).unwrap_or_default();
    assert!(
        tl.contains("link eth0 up") && tl.contains("lease eth0 bound"),
        "{tl}"
    );
}

#[test]
fn ns_net_static_config() {
    let mut lab = Lab::new("static");
    lab.veth("eth0", "10.88.0.1/24");
    let mut ns = lab.init(
        "net-static",
        r#"[[link]]
name = "eth0"
addresses = ["10.88.0.5/24"]
gateway = "10.88.0.1"
routes = [{ to = "172.30.0.0/16", via = "10.88.0.254" }]
dns = ["10.88.0.53"]
search = ["static.example"]
mtu = 1400
"#,
        &[("after-online", ONLINE_UNIT)],
    );
    ns.start();
    assert!(wait_file(&ns, "online", T), "{}", ns.log());
    let link = lab.ip(&["link", "show", "dev", "eth0"]);
    assert!(link.contains("mtu 1400") && link.contains(",UP"), "{link}");
    let addr = lab.ip(&["-4", "addr", "show", "dev", "eth0"]);
    assert!(addr.contains("inet 10.88.0.5/24 brd 10.88.0.255"), "{addr}");
    let routes = lab.ip(&["-4", "route"]);
    assert!(
        routes.contains("default via 10.88.0.1 dev eth0 proto static"),
        "{routes}"
    );
    assert!(
        routes.contains("172.30.0.0/16 via 10.88.0.254 dev eth0 proto static"),
        "{routes}"
    );
    let resolv = std::fs::read_to_string(ns.run.join("resolv.conf")).unwrap();
    assert!(
        resolv.contains("nameserver 10.88.0.53\nsearch static.example\n"),
        "{resolv}"
    );
    ns.stop(T);
}

#[test]
fn ns_net_nak_for_a_remembered_lease_then_discover() {
    let mut lab = Lab::new("nak");
    let s = lab.veth("eth0", "10.77.0.1/24");
    lab.dnsmasq(
        &[&s],
        &[
            "--dhcp-range=10.77.0.50,10.77.0.99,255.255.255.0,1h",
            "--dhcp-option=3,10.77.0.1",
            "--dhcp-authoritative",
        ],
    );
    let mut ns = lab.init(
        "net-nak",
        "[[link]]\nname = \"eth0\"\n",
        &[("after-online", ONLINE_UNIT)],
    );
    // A lease from another network, remembered from "the last boot".
    std::fs::create_dir_all(ns.run.join("leases")).unwrap();
    std::fs::write(
        ns.run.join("leases/dhcp-eth0.lease"),
        r#"{"lease":{"address":"10.99.0.7","prefix":24,"broadcast":null,"server":"10.99.0.1",
            "routes":[],"dns":[],"search":[],"hostname":null,"mtu":null,
            "lease_time":3600,"t1":1800,"t2":3150},"expires_unix":null}"#,
    )
    .unwrap();
    ns.start();
    assert!(
        wait_file(&ns, "online", T),
        "{}\n{}",
        ns.log(),
        lab.dnsmasq_log()
    );
    let log = lab.dnsmasq_log();
    assert!(
        log.contains("DHCPNAK") && log.contains("10.99.0.7"),
        "{log}"
    );
    // Not asserted: that the client itself saw the NAK. Under heavy load (load average ~9 on 2
    // cores) one run in about ten fell back to DISCOVER after INIT-REBOOT's 1-3 s wait without
    // logging the NAK; the outcome below holds either way, and the client's NAK handling in
    // INIT-REBOOT is covered by the pure tests (`init_reboot_with_remembered_lease`).
    let addr = lab.ip(&["-4", "addr", "show", "dev", "eth0"]);
    assert!(
        addr.contains("inet 10.77.0.") && !addr.contains("10.99.0.7"),
        "{addr}"
    );
    ns.stop(T);
}

#[test]
fn ns_net_server_absent_then_back_and_carrier_flap() {
    let mut lab = Lab::new("gone");
    let s = lab.veth("eth0", "10.77.0.1/24");
    let mut ns = lab.init(
        "net-gone",
        "[[link]]\nname = \"eth0\"\n",
        &[("after-online", ONLINE_UNIT)],
    );
    ns.start();
    // No server: DISCOVER retransmits (2 s, then 4 s...), nothing is configured.
    std::thread::sleep(Duration::from_secs(3));
    assert!(!ns.out.join("online").exists());
    assert!(!lab
        .ip(&["-4", "addr", "show", "dev", "eth0"])
        .contains("inet "));
    let args = [
        "--dhcp-range=10.77.0.50,10.77.0.99,255.255.255.0,1h",
        "--dhcp-option=3,10.77.0.1",
        "--dhcp-authoritative",
    ];
    lab.dnsmasq(&[&s], &args);
    assert!(
        wait_file(&ns, "online", T),
        "{}\n{}",
        ns.log(),
        lab.dnsmasq_log()
    );
    let first = lab.ip(&["-4", "addr", "show", "dev", "eth0"]);
    assert!(first.contains("inet 10.77.0."), "{first}");
    // Carrier lost and regained (the server's end goes down and up): the lease is re-checked
    // with an INIT-REBOOT REQUEST, which the server ACKs, and the address stays.
    let acks = |l: &str| l.matches("DHCPACK").count();
    let before = acks(&lab.dnsmasq_log());
    run(&["ip", "-n", &lab.server, "link", "set", &s, "down"]);
    assert!(ns.wait_log(T, "eth0 lost carrier"), "{}", ns.log());
    run(&["ip", "-n", &lab.server, "link", "set", &s, "up"]);
    assert!(ns.wait_log(T, "eth0 carrier regained"), "{}", ns.log());
    assert!(
        ns.wait_for(T, || acks(&lab.dnsmasq_log()) > before),
        "{}\n{}",
        ns.log(),
        lab.dnsmasq_log()
    );
    let after = lab.ip(&["-4", "addr", "show", "dev", "eth0"]);
    assert!(after.contains("inet 10.77.0."), "{after}");
    ns.stop(T);
}

#[test]
fn ns_net_two_links() {
    let mut lab = Lab::new("two");
    let s1 = lab.veth("eth0", "10.77.0.1/24");
    let s2 = lab.veth("eth1", "10.78.0.1/24");
    lab.dnsmasq(
        &[&s1, &s2],
        &[
            "--dhcp-range=10.77.0.50,10.77.0.99,255.255.255.0,1h",
            "--dhcp-range=10.78.0.50,10.78.0.99,255.255.255.0,1h",
            "--dhcp-authoritative",
        ],
    );
    let mut ns = lab.init(
        "net-two",
        "[[link]]\nname = \"eth*\"\n",
        &[("after-online", ONLINE_UNIT)],
    );
    ns.start();
    let both = || {
        let a = lab.ip(&["-4", "addr"]);
        a.contains("inet 10.77.0.") && a.contains("inet 10.78.0.")
    };
    assert!(ns.wait_for(T, both), "{}\n{}", ns.log(), lab.dnsmasq_log());
    assert!(wait_file(&ns, "online", T), "{}", ns.log());
    for link in ["eth0", "eth1"] {
        assert!(bound_ms(&ns.log(), link).is_some(), "{}", ns.log());
    }
    ns.stop(T);
}

#[test]
fn ns_net_online_timeout_fails_requiring_units_only() {
    let mut lab = Lab::new("tmo");
    lab.veth("eth0", "10.77.0.1/24");
    let mut ns = lab.init(
        "net-timeout",
        "online-timeout = \"2s\"\n[[link]]\nname = \"eth0\"\n",
        &[
            ("after-online", ONLINE_UNIT),
            (
                "ordered",
                "type = \"oneshot\"\nafter = [\"network-online\"]\nexec = [\"/bin/sh\", \"-c\", \"touch @OUT@/ordered\"]\n",
            ),
        ],
    );
    let t0 = Instant::now();
    ns.start();
    assert!(wait_file(&ns, "ordered", T), "{}", ns.log());
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "ordered unit ran before the timeout: {waited:?}"
    );
    assert!(
        ns.wait_log(
            T,
            "lifsea-init: network-online not reached: eth0: no lease after 2s (state selecting)"
        ),
        "{}",
        ns.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !ns.out.join("online").exists(),
        "a unit requiring network-online ran"
    );
    ns.stop(T);
}

/// The vendor units as shipped in images (`units/*.toml`), run by an init that owns the network
/// facts: the boot completes, and every fact the units name is reached. containerd is the real one
/// (its state directories on tmpfs inside the namespace); there is no kubelet binary on these
/// machines, so kubelet (its config present) fails to spawn and says so — everything up to that
/// edge runs. One file is replaced: node-prep would change this host (swap, kernel modules, the
/// root cgroup's controllers), so a no-op oneshot stands in for it here; node-prep itself is tested
/// in src/node/tests.rs and in the VM (tests/vm/check.sh).
/// Two stand-ins: node-prep (it would change the host's sysctls, swap and cgroups) is a oneshot that
/// succeeds, and kubelet's config is written on a tmpfs in the init's mount namespace, so kubelet is
/// not skipped (tests/ns_kubelet.rs covers the skipping).
#[test]
fn shipped_units_boot_to_completion_with_every_fact_they_name() {
    assert!(
        std::path::Path::new("/usr/bin/containerd").exists(),
        "needs containerd (tests/setup.sh installs it)"
    );
    let mut lab = Lab::new("ship");
    lab.veth("eth0", "10.66.0.1/24");
    let mut ns = lab.init(
        "shipped",
        "[[link]]\nname = \"eth0\"\naddresses = [\"10.66.0.5/24\"]\ngateway = \"10.66.0.1\"\n",
        &[],
    );
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("units");
    let mut facts = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(&shipped).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let text = std::fs::read_to_string(&p).unwrap();
            let doc: toml::Value = toml::from_str(&text).unwrap();
            for key in ["after", "requires", "wants"] {
                for v in doc
                    .get(key)
                    .and_then(|v| v.as_array())
                    .into_iter()
                    .flatten()
                {
                    let name = v.as_str().unwrap();
                    // In container mode only the network facts are reached during the boot (with
                    // `--net`); the others (`machine`, `mounts`, ...) are true from the start and
                    // have no stamp.
                    if lifsea_init::units::schema::FACTS.contains(&name)
                        && name.starts_with("network")
                    {
                        facts.insert(name.to_string());
                    }
                }
            }
            if p.file_stem().is_some_and(|s| s == "node-prep") {
                std::fs::write(
                    ns.units.join("node-prep.toml"),
                    "type = \"oneshot\"\nexec = [\"/bin/sh\", \"-c\", \"exit 0\"]\n",
                )
                .unwrap();
                continue;
            }
            std::fs::copy(&p, ns.units.join(p.file_name().unwrap())).unwrap();
        }
    }
    assert!(
        facts.contains("network-online"),
        "the shipped units name {facts:?}"
    );
    // containerd keeps its state in fixed paths: give it fresh ones in the init's mount namespace
    // (ip netns exec makes a private one), so nothing of the host's is touched.
    ns.prefix = format!(
        "ip netns exec {} sh -c 'mkdir -p /var/lib/containerd /run/containerd /var/lib/kubelet && \
         mount -t tmpfs lifsea-test /var/lib/containerd && \
         mount -t tmpfs lifsea-test /run/containerd && \
         mount -t tmpfs lifsea-test /var/lib/kubelet && \
         echo \"kind: KubeletConfiguration\" > /var/lib/kubelet/config.yaml && exec \"$0\" \"$@\"' ",
        lab.client
    );
    ns.start();
    assert!(
        ns.wait_log(Duration::from_secs(90), "boot complete"),
        "{}",
        ns.log()
    );
    let timeline = ns.timeline().expect("boot-timeline.json");
    let entries = timeline["entries"].as_array().unwrap();
    for fact in &facts {
        assert!(
            entries.iter().any(|s| s["kind"] == "fact"
                && s["name"] == fact.as_str()
                && s["event"] == "ready"),
            "fact {fact} not reached:\n{}",
            ns.log()
        );
    }
    let units = timeline["units"].as_array().unwrap();
    let state = |n: &str| {
        units
            .iter()
            .find(|u| u["name"] == n)
            .map(|u| (u["state"].clone(), u["failure"].clone()))
            .unwrap()
    };
    assert_eq!(state("containerd").0, "running", "{}", ns.log());
    let (kubelet, why) = state("kubelet");
    assert_eq!(kubelet, "failed");
    assert!(
        why.as_str()
            .unwrap_or_default()
            .contains("/usr/bin/kubelet"),
        "kubelet should fail only for want of its binary: {why}"
    );
    ns.stop(Duration::from_secs(30));
}

#[test]
fn ns_net_dhcp_without_router_gets_configured_gateway() {
    // Like QEMU's user network with restrict=on: the server sends neither router nor DNS.
    let mut lab = Lab::new("norouter");
    let s = lab.veth("eth0", "10.77.0.1/24");
    lab.dnsmasq(
        &[&s],
        &[
            "--dhcp-range=10.77.0.50,10.77.0.99,255.255.255.0,1h",
            "--dhcp-option=3",
            "--dhcp-option=6",
            "--no-ping",
            "--dhcp-authoritative",
        ],
    );
    let mut ns = lab.init(
        "net-norouter",
        "[[link]]\nname = \"eth0\"\ndhcp = true\ngateway = \"10.77.0.1\"\ndns = [\"10.77.0.53\"]\n",
        &[("after-online", ONLINE_UNIT)],
    );
    ns.start();
    assert!(
        wait_file(&ns, "online", T),
        "{}\n{}",
        ns.log(),
        lab.dnsmasq_log()
    );
    let routes = lab.ip(&["-4", "route"]);
    assert!(
        routes.contains("default via 10.77.0.1 dev eth0 proto static"),
        "{routes}"
    );
    let resolv = std::fs::read_to_string(ns.run.join("resolv.conf")).unwrap();
    assert!(resolv.contains("nameserver 10.77.0.53\n"), "{resolv}");
    ns.stop(T);
}
