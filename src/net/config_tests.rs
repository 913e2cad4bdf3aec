use super::*;

fn p(text: &str) -> Result<NetworkConfig, Vec<String>> {
    parse(Path::new("network.toml"), text)
        .map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
}

#[test]
fn full_example() {
    let c = p(r#"
online-timeout = "30s"

[[link]]
name = "eth0"
addresses = ["10.0.0.5/24"]
gateway = "10.0.0.1"
routes = [{ to = "192.168.0.0/16", via = "10.0.0.254" }, { to = "default", via = "10.0.0.1" }]
dns = ["10.0.0.2", "fd00::53"]
search = ["corp.example"]
mtu = 9000

[[link]]
mac = "52:54:00:AB:cd:01"
driver = "virtio_net"
required = false
release = true
"#)
    .unwrap();
    assert_eq!(c.online_timeout, Duration::from_secs(30));
    let l = &c.links[0];
    assert!(!l.dhcp, "static addresses turn DHCP off by default");
    assert_eq!(l.addresses, vec![(Ipv4Addr::new(10, 0, 0, 5), 24)]);
    assert_eq!(l.gateway, Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(l.routes.len(), 2);
    assert_eq!(l.routes[1].prefix, 0);
    assert_eq!(l.dns.len(), 2);
    assert_eq!(l.mtu, Some(9000));
    assert!(l.required);
    let l = &c.links[1];
    assert!(l.dhcp && !l.required && l.release);
    assert_eq!(l.matcher.mac, Some([0x52, 0x54, 0, 0xab, 0xcd, 1]));
    assert!(l.matcher.matches(
        "ens3",
        Some([0x52, 0x54, 0, 0xab, 0xcd, 1]),
        Some("virtio_net")
    ));
    assert!(!l
        .matcher
        .matches("ens3", Some([0x52, 0x54, 0, 0xab, 0xcd, 1]), Some("e1000")));
}

#[test]
fn empty_file_is_the_default() {
    assert_eq!(p("").unwrap(), NetworkConfig::default());
    let d = NetworkConfig::default();
    assert!(d.links[0].dhcp && !d.links[0].required);
    assert!(d.links[0].matcher.matches("anything", None, None));
}

#[test]
fn name_patterns() {
    let m = LinkMatch {
        name: Some("eth*".into()),
        ..Default::default()
    };
    assert!(m.matches("eth0", None, None) && m.matches("eth10", None, None));
    assert!(!m.matches("ens3", None, None));
}

#[test]
fn exact_errors_with_line_and_column() {
    assert_eq!(
        p("online-timeout = \"soon\"\n[[link]]\nname = \"eth0\"\nmtu = 20\naddresses = [\"10.0.0.5\"]\ngateway = \"10.0.0.300\"\nmac = \"52:54\"\nroutes = [{ to = \"nowhere\" }]\ndns = [\"x\"]\n")
            .unwrap_err(),
        vec![
            "network.toml:1:18: online-timeout: invalid duration \"soon\": expected a number like 500ms, 10s, 2m, 1h or 1m30s",
            "network.toml:7:7: mac: \"52:54\" is not a MAC address like 52:54:00:12:34:56",
            "network.toml:5:14: addresses: \"10.0.0.5\" is not an IPv4 address with a prefix like 10.0.0.5/24",
            "network.toml:6:11: gateway: \"10.0.0.300\" is not an IPv4 address",
            "network.toml:8:18: routes: to \"nowhere\" is not \"default\" or a prefix like 192.168.0.0/16",
            "network.toml:9:8: dns: \"x\" is not an IP address",
            "network.toml:4:7: mtu: 20 is outside 68..65535",
        ]
    );
    assert_eq!(
        p("[[link]]\ndhcp = true\n").unwrap_err(),
        vec!["network.toml:1:1: link: give at least one of name, mac or driver to match"]
    );
    let e = p("[[link]]\nname = \"eth0\"\nspeed = 10\n").unwrap_err();
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("network.toml:3:1: unknown field `speed`"),
        "{e:?}"
    );
    let e = p("[[link]]\nname = \"eth0\"\nmtu = \"big\"\n").unwrap_err();
    assert!(
        e[0].starts_with("network.toml:3:7: invalid type: string \"big\""),
        "{e:?}"
    );
}

#[test]
fn plan_from_ip_words() {
    let s =
        crate::net::ipconfig::parse("10.0.2.15::10.0.2.2:255.255.255.0:node1:eth0:none:10.0.2.3")
            .unwrap();
    let c = plan(None, &[s], Some(Duration::from_secs(5)));
    assert_eq!(c.online_timeout, Duration::from_secs(5));
    let l = &c.links[0];
    assert!(!l.dhcp && l.required);
    assert_eq!(l.matcher.name.as_deref(), Some("eth0"));
    assert_eq!(l.addresses, vec![(Ipv4Addr::new(10, 0, 2, 15), 24)]);
    assert_eq!(l.hostname.as_deref(), Some("node1"));
    assert!(plan(None, &[IpConfig::Off], None).links.is_empty());
    assert_eq!(plan(None, &[], None), NetworkConfig::default());
}
