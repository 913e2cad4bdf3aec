//! Helpers shared by the targets: one fuzz input often stands for several files at once.
#![allow(dead_code)]

/// Splits an input into up to `n` text parts at NUL bytes (lossy UTF-8: the init reads these
/// files as text, and a file that is not UTF-8 never reaches the parser). Missing parts are empty.
pub fn parts(data: &[u8], n: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(data);
    let mut out: Vec<String> = text.splitn(n, '\0').map(str::to_string).collect();
    out.resize(n, String::new());
    out
}

/// Whitespace-separated words of a text (a stand-in for a list of names).
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}
