//! The `log` facade's sink: /dev/kmsg on a machine (so messages interleave with the kernel's and
//! survive to the console), stderr when /dev/kmsg is absent or unwritable. CONTRACT STUB.

/// Installs the logger; `debug` lowers the level to Debug.
pub fn init(debug: bool) {
    let _ = debug;
}
