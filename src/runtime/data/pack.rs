//! Packing: concatenate consecutive causal LM examples into sequences of at most `max_len`
//! tokens, in order, never splitting an example. Labels travel with their tokens, so masking
//! survives; each sequence records the lengths of its examples, so attention and positions
//! restart at every example (see [`Example::mask_row`]): a packed example is computed exactly as
//! it would be alone.

use crate::runtime::batch::Example;

/// Pack `examples` greedily in order into sequences of at most `max_len` tokens. An example
/// longer than `max_len` stays alone.
pub fn pack(examples: &[Example], max_len: usize) -> Vec<Example> {
    let mut packer = Packer::new(max_len);
    let mut out: Vec<Example> = examples.iter().filter_map(|e| packer.push(e)).collect();
    out.extend(packer.finish());
    out
}

/// Packs a stream of examples with the same rule as [`pack`], one sequence at a time.
#[derive(Debug)]
pub struct Packer {
    max_len: usize,
    cur: Example,
}

impl Packer {
    pub fn new(max_len: usize) -> Self {
        Packer {
            max_len,
            cur: Example {
                input_ids: Vec::new(),
                labels: Vec::new(),
                class_label: None,
                packed: Vec::new(),
            },
        }
    }

    /// Add an example; returns a full sequence when one is complete.
    pub fn push(&mut self, ex: &Example) -> Option<Example> {
        let mut full = None;
        if !self.cur.input_ids.is_empty()
            && self.cur.input_ids.len() + ex.input_ids.len() > self.max_len
        {
            full = self.finish();
        }
        self.cur.input_ids.extend_from_slice(&ex.input_ids);
        self.cur.labels.extend_from_slice(&ex.labels);
        let len = u32::try_from(ex.input_ids.len()).unwrap_or(u32::MAX);
        if ex.packed.is_empty() {
            self.cur.packed.push(len);
        } else {
            self.cur.packed.extend_from_slice(&ex.packed);
        }
        full
    }

    /// The last, partial sequence.
    pub fn finish(&mut self) -> Option<Example> {
        if self.cur.input_ids.is_empty() {
            return None;
        }
        if self.cur.packed.len() < 2 {
            // One example alone is not a packed sequence.
            self.cur.packed.clear();
        }
        Some(std::mem::replace(
            &mut self.cur,
            Example {
                input_ids: Vec::new(),
                labels: Vec::new(),
                class_label: None,
                packed: Vec::new(),
            },
        ))
    }
}
