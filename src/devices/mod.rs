//! Devices without udev (docs/devices.md). The running machine's side is the `subsystem` (coldplug
//! beside the units, hotplug from `uevent`s, `links`, node `rules`, the `power` button, device
//! facts), which loads modules through helper processes: the `modprobe` face of this binary, built
//! on `loader` (finit_module and the load record), `index` (modprobe's resolution and load plan)
//! and `modprobe_d`. Stage 0 keeps the in-process `coldplug`/`kmod`; `modalias` is the pure
//! modules.alias / modules.dep logic shared with `mkinitramfs`; `view` renders `initctl devices`;
//! `blockdev` reads the filesystem and GPT identities behind the links and stage 0's `root=`.

pub mod blockdev;
pub mod coldplug;
pub mod facts;
pub mod fsprobe;
pub mod index;
pub mod kmod;
pub mod links;
pub mod loader;
pub mod modalias;
pub mod modprobe;
pub mod modprobe_d;
pub mod power;
pub mod probe_jobs;
pub mod rules;
pub mod subsystem;
pub mod uevent;
pub mod view;
