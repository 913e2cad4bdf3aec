//! Devices without udev: modalias coldplug (`coldplug`), kernel module loading (`kmod`) and the
//! pure modules.alias / modules.dep logic they share with `mkinitramfs` (`modalias`); modprobe's
//! decisions (`index`, `modprobe_d`); kernel uevents (`uevent`); `/dev/disk` links (`links`) and
//! node ownership (`rules`); `blockdev` reads filesystem and GPT identities for those links and
//! for stage 0's `root=LABEL=...`.

pub mod blockdev;
pub mod coldplug;
pub mod index;
pub mod kmod;
pub mod links;
pub mod loader;
pub mod modalias;
pub mod modprobe;
pub mod modprobe_d;
pub mod power;
pub mod rules;
pub mod subsystem;
pub mod uevent;
pub mod view;
