//! Devices without udev: modalias coldplug (`coldplug`), kernel module loading (`kmod`) and the
//! pure modules.alias / modules.dep logic they share with `mkinitramfs` (`modalias`).

pub mod coldplug;
pub mod kmod;
pub mod modalias;
