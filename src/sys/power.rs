//! Machine-wide power and process-tree controls: reboot(2) (the only caller of it), Ctrl-Alt-Del
//! routing, sync(2), and the child-subreaper flag that makes orphans come to us.

use nix::sys::reboot::RebootMode;

/// What reboot(2) should do at the very end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Poweroff,
    Reboot,
    Halt,
}

/// reboot(2) with LINUX_REBOOT_CMD_CAD_OFF: Ctrl-Alt-Del sends SIGINT to PID 1 instead of an
/// immediate reboot, so it goes through an orderly shutdown.
pub fn disable_ctrl_alt_del() -> nix::Result<()> {
    nix::sys::reboot::set_cad_enabled(false)
}

/// reboot(2) with the matching command; returns only on failure.
pub fn reboot(action: PowerAction) -> nix::Error {
    let mode = match action {
        PowerAction::Poweroff => RebootMode::RB_POWER_OFF,
        PowerAction::Reboot => RebootMode::RB_AUTOBOOT,
        PowerAction::Halt => RebootMode::RB_HALT_SYSTEM,
    };
    match nix::sys::reboot::reboot(mode) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

/// sync(2): flush every filesystem.
pub fn sync_all() {
    nix::unistd::sync();
}

/// prctl(PR_SET_CHILD_SUBREAPER): orphans of our descendants are reparented to us (when we are not
/// PID 1 of a namespace, which gets them anyway), so a supervisor that is not PID 1 (container
/// mode, tests) still reaps what its services leave behind.
pub fn become_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}
