//! node-prep: the declared file formats, and a whole run against a prefix directory with a fake
//! cgroup tree (the real cgroup2 mount of the test host offers no controllers to enable).

use std::fs;

use super::*;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lifsea-node-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn config_defaults_and_errors() {
    let c = parse_config("").unwrap();
    assert_eq!(c.pods_cgroup, "kubepods");
    assert!(c.swap_off && c.directories.is_empty() && c.cgroup_controllers.is_empty());
    let c = parse_config(
        "directories = [\"/var/lib/kubelet\"]\ncgroup-controllers = [\"cpu\", \"hugetlb\"]\nswap-off = false\n",
    )
    .unwrap();
    assert_eq!(c.directories, vec![PathBuf::from("/var/lib/kubelet")]);
    assert_eq!(c.cgroup_controllers, vec!["cpu", "hugetlb"]);
    assert!(!c.swap_off);
    let e = parse_config("directories = []\nswapoff = true\n").unwrap_err();
    assert!(e.starts_with("2:1: unknown field `swapoff`"), "{e}");
    assert!(parse_config("directories = [\"var/x\"]\n")
        .unwrap_err()
        .contains("absolute"));
    assert!(parse_config("pods-cgroup = \"../x\"\n")
        .unwrap_err()
        .starts_with("pods-cgroup:"));
    assert!(parse_config("cgroup-controllers = [\"+cpu\"]\n")
        .unwrap_err()
        .contains("invalid controller"));
}

#[test]
fn modules_load_swaps_and_controllers() {
    assert_eq!(
        parse_modules_load("# k8s\noverlay\n\n ; old\n br_netfilter \n"),
        vec!["overlay", "br_netfilter"]
    );
    assert_eq!(
        parse_swaps("Filename\tType\tSize\tUsed\tPriority\n/swap\\040file file 1 0 -2\n/dev/vdb partition 1 0 -3\n"),
        vec![PathBuf::from("/swap file"), PathBuf::from("/dev/vdb")]
    );
    assert!(parse_swaps("Filename\tType\tSize\tUsed\tPriority\n").is_empty());
    let wanted: Vec<String> = ["cpu", "memory", "hugetlb"].map(String::from).to_vec();
    assert_eq!(
        split_controllers(&wanted, "cpuset cpu io memory pids\n"),
        (vec!["cpu".into(), "memory".into()], vec!["hugetlb".into()])
    );
}

#[test]
fn admin_files_replace_vendor_files_of_the_same_name() {
    let d = tmp("conf");
    let (v, a) = (d.join("usr"), d.join("etc"));
    fs::create_dir_all(&v).unwrap();
    fs::create_dir_all(&a).unwrap();
    fs::write(v.join("k8s.conf"), "overlay\nbr_netfilter\n").unwrap();
    fs::write(v.join("a.conf"), "x\n").unwrap();
    fs::write(a.join("k8s.conf"), "overlay\n").unwrap();
    fs::write(a.join("notes.txt"), "y\n").unwrap();
    assert_eq!(
        crate::paths::conf_files(&[v.clone(), a.clone()]),
        vec![v.join("a.conf"), a.join("k8s.conf")]
    );
    fs::remove_dir_all(&d).unwrap();
}

/// A whole run under a prefix: the admin node.toml wins over the vendor one, sysctls land in the
/// prefix's proc/sys, directories appear, and the controllers are enabled at the root and in the
/// pods group (a plain file stands in for each subtree_control, so the last write is what it holds).
#[test]
fn a_run_applies_every_declared_prerequisite() {
    let root = tmp("run");
    let cg = root.join("cgroup");
    fs::create_dir_all(&cg).unwrap();
    fs::write(cg.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
    let w = |p: &str, text: &str| {
        let p = root.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    };
    w(
        "usr/lib/lifsea/node.toml",
        "directories = [\"/vendor-only\"]\n",
    );
    w(
        "etc/lifsea/node.toml",
        "directories = [\"/var/lib/kubelet\", \"/opt/cni/bin\"]\ncgroup-controllers = [\"cpu\", \"pids\", \"hugetlb\"]\n",
    );
    w(
        "usr/lib/lifsea/sysctl.d/50-k8s.conf",
        "net.ipv4.ip_forward = 1\n",
    );
    w("proc/sys/net/ipv4/ip_forward", "0\n");
    // The pods group's subtree_control must exist as a file before the run writes to it.
    fs::create_dir_all(cg.join("kubepods")).unwrap();
    let p = Paths {
        root: root.clone(),
        cgroup_root: cg.clone(),
    };
    let errors = run(&p);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        fs::read_to_string(root.join("proc/sys/net/ipv4/ip_forward")).unwrap(),
        "1\n"
    );
    assert!(root.join("var/lib/kubelet").is_dir() && root.join("opt/cni/bin").is_dir());
    assert!(
        !root.join("vendor-only").exists(),
        "the vendor file was used"
    );
    for g in [cg.clone(), cg.join("kubepods")] {
        assert_eq!(
            fs::read_to_string(g.join("cgroup.subtree_control")).unwrap(),
            "+pids",
            "{}",
            g.display()
        );
    }
    // A broken admin file is an error, not "nothing declared".
    w("etc/lifsea/node.toml", "directoris = []\n");
    let errors = run(&p);
    assert!(
        matches!(errors.as_slice(), [NodeError::Config { .. }]),
        "{errors:?}"
    );
    fs::remove_dir_all(&root).unwrap();
}
