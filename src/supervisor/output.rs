//! Splitting a service's stdout/stderr stream into lines.
//!
//! Pipes deliver arbitrary chunks; a line may arrive in pieces. The buffer keeps the unfinished tail,
//! but never more than `cap` bytes: a service writing without newlines gets its output cut into
//! `cap`-sized lines instead of growing the init's memory.

/// Default cap of an unfinished line.
pub const LINE_CAP: usize = 4096;

#[derive(Debug, Default)]
pub struct LineBuffer {
    partial: Vec<u8>,
    cap: usize,
}

impl LineBuffer {
    pub fn new(cap: usize) -> Self {
        Self {
            partial: Vec::new(),
            cap: cap.max(1),
        }
    }

    /// Feeds a chunk; returns the complete lines it finished (without newlines).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for &b in chunk {
            if b == b'\n' {
                out.push(std::mem::take(&mut self.partial));
            } else {
                self.partial.push(b);
                if self.partial.len() >= self.cap {
                    out.push(std::mem::take(&mut self.partial));
                }
            }
        }
        out
    }

    /// At end of stream: the unfinished tail, if any.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.partial.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.partial))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_pieces_and_splits_lines() {
        let mut b = LineBuffer::new(100);
        assert!(b.feed(b"hel").is_empty());
        assert_eq!(b.feed(b"lo\nwor"), vec![b"hello".to_vec()]);
        assert_eq!(b.feed(b"ld\n\nx"), vec![b"world".to_vec(), Vec::new()]);
        assert_eq!(b.finish(), Some(b"x".to_vec()));
        assert_eq!(b.finish(), None);
    }

    #[test]
    fn caps_a_line_without_newline() {
        let mut b = LineBuffer::new(4);
        assert_eq!(
            b.feed(b"abcdefghij\n"),
            vec![b"abcd".to_vec(), b"efgh".to_vec(), b"ij".to_vec()]
        );
    }
}
