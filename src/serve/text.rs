//! Turning a request's new tokens into text as they come: incremental decoding (text is
//! released only once it can no longer change: no trailing half character, no tail that could
//! still become a stop string) and stop strings (the text ends before the first one, which is
//! never sent). Must not see the model.

use tokenizers::Tokenizer;

/// The text state of one request.
#[derive(Debug, Default)]
pub struct TextStream {
    ids: Vec<u32>,
    /// Bytes of the decoded text already released.
    sent: usize,
    stop: Vec<String>,
}

/// What accepting a token gives.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// New text that is final.
    pub text: String,
    /// A stop string was found: the request ends (its text is complete).
    pub stopped: bool,
}

impl TextStream {
    pub fn new(stop: Vec<String>) -> Self {
        Self {
            ids: Vec::new(),
            sent: 0,
            stop,
        }
    }

    /// Every token accepted so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    fn decoded(&self, tok: &Tokenizer) -> Result<String, String> {
        tok.decode(&self.ids, true).map_err(|e| e.to_string())
    }

    /// Adds a token; returns the text it makes final.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<Released, String> {
        self.ids.push(id);
        let text = self.decoded(tok)?;
        if let Some(at) = self.first_stop(&text) {
            return Ok(Released {
                text: self.take(&text, at),
                stopped: true,
            });
        }
        let mut end = text.len() - self.held_back(&text);
        // A byte-level token may end inside a character: wait for the rest.
        while text[..end].ends_with('\u{FFFD}') {
            end -= '\u{FFFD}'.len_utf8();
        }
        Ok(Released {
            text: self.take(&text, end),
            stopped: false,
        })
    }

    /// Releases everything not yet sent (the request ends for another reason).
    pub fn finish(&mut self, tok: &Tokenizer) -> Result<String, String> {
        let text = self.decoded(tok)?;
        let end = text.len();
        Ok(self.take(&text, end))
    }

    fn take(&mut self, text: &str, end: usize) -> String {
        if end <= self.sent || !text.is_char_boundary(self.sent) || !text.is_char_boundary(end) {
            return String::new();
        }
        let out = text[self.sent..end].to_string();
        self.sent = end;
        out
    }

    /// Byte offset of the earliest stop string at or after the released text's start of
    /// possible matches.
    fn first_stop(&self, text: &str) -> Option<usize> {
        // A stop string may start inside text already released only if it was held back, so
        // searching from the start of unreleased text minus the longest stop is enough.
        let longest = self.stop.iter().map(String::len).max().unwrap_or(0);
        let mut from = self.sent.saturating_sub(longest);
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        self.stop
            .iter()
            .filter_map(|s| text[from..].find(s.as_str()).map(|i| from + i))
            .filter(|&at| at >= self.sent)
            .min()
    }

    /// Bytes at the end of `text` that are a proper prefix of some stop string.
    fn held_back(&self, text: &str) -> usize {
        let mut hold = 0;
        for s in &self.stop {
            for (i, _) in s.char_indices().skip(1) {
                if i > hold && text.ends_with(&s[..i]) && text.len() - i >= self.sent {
                    hold = i;
                }
            }
        }
        hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::models::wordlevel::WordLevel;

    fn tokenizer() -> Tokenizer {
        let vocab = [("a", 0), ("b", 1), ("c", 2), ("END", 3)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let model = WordLevel::builder().vocab(vocab).build().unwrap();
        Tokenizer::new(model)
    }

    #[test]
    fn text_before_a_stop_string_is_released_and_the_stop_never_is() {
        let tok = tokenizer();
        let mut s = TextStream::new(vec!["b c".into()]);
        let mut out = String::new();
        let r = s.push(&tok, 0).unwrap();
        out += &r.text;
        assert!(!r.stopped);
        // "b" could start "b c": held back.
        let r = s.push(&tok, 1).unwrap();
        out += &r.text;
        assert_eq!(out.trim(), "a");
        let r = s.push(&tok, 2).unwrap();
        out += &r.text;
        assert!(r.stopped);
        assert!(!out.contains('b'), "{out:?}");
        // Without a stop, everything comes out.
        let mut s = TextStream::new(vec![]);
        let mut all = String::new();
        for id in [0, 1, 2] {
            all += &s.push(&tok, id).unwrap().text;
        }
        all += &s.finish(&tok).unwrap();
        assert_eq!(all, tok.decode(&[0, 1, 2], true).unwrap());
    }
}
