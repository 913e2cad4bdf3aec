//! Stage 3: after units are stopped, kill what is left, sync, unmount and reboot(2). CONTRACT STUB.

use crate::control::ops::ShutdownKind;

/// Container mode: SIGTERM then SIGKILL every remaining process, reap them, and return.
pub fn finish_container() {}

/// Machine mode: kill the rest, sync, unmount or remount read-only, then reboot(2). Never returns.
pub fn finish_machine(kind: ShutdownKind) -> ! {
    let _ = kind;
    loop {
        std::thread::park();
    }
}
