//! Turning a request's new tokens into text as they come: incremental decoding (text is
//! released only once it can no longer change: no trailing half character, no tail that could
//! still become a stop string) and stop strings (the text ends before the first one, which is
//! never sent). Must not see the model.

use tokenizers::Tokenizer;

/// The text state of one request.
#[derive(Debug, Default)]
pub struct TextStream {
    ids: Vec<u32>,
    /// Incremental decoding (as text-generation-inference does): the text of
    /// `ids[prefix..read]` is already in `text`; new text is what decoding `ids[prefix..]` adds
    /// to it, so each token costs a decode of a few tokens, not of the whole output.
    prefix: usize,
    read: usize,
    /// The final text so far.
    text: String,
    /// Bytes of `text` already released.
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
            stop,
            ..Self::default()
        }
    }

    /// Every token accepted so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    fn decode(tok: &Tokenizer, ids: &[u32]) -> Result<String, String> {
        tok.decode(ids, true).map_err(|e| e.to_string())
    }

    /// Moves newly decodable text into `text`; `all`: also a trailing half character.
    fn advance(&mut self, tok: &Tokenizer, all: bool) -> Result<(), String> {
        let before = Self::decode(tok, &self.ids[self.prefix..self.read])?;
        let after = Self::decode(tok, &self.ids[self.prefix..])?;
        if after.len() > before.len()
            && after.is_char_boundary(before.len())
            && (all || !after.ends_with('\u{FFFD}'))
        {
            self.text.push_str(&after[before.len()..]);
            self.prefix = self.read;
            self.read = self.ids.len();
        }
        Ok(())
    }

    /// Adds a token; returns the text it makes final.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<Released, String> {
        self.ids.push(id);
        self.advance(tok, false)?;
        if let Some(at) = self.first_stop() {
            return Ok(Released {
                text: self.take(at),
                stopped: true,
            });
        }
        let end = self.text.len() - self.held_back();
        Ok(Released {
            text: self.take(end),
            stopped: false,
        })
    }

    /// Releases everything not yet sent (the request ends for another reason).
    pub fn finish(&mut self, tok: &Tokenizer) -> Result<String, String> {
        self.advance(tok, true)?;
        Ok(self.take(self.text.len()))
    }

    fn take(&mut self, end: usize) -> String {
        let text = &self.text;
        if end <= self.sent || !text.is_char_boundary(self.sent) || !text.is_char_boundary(end) {
            return String::new();
        }
        let out = text[self.sent..end].to_string();
        self.sent = end;
        out
    }

    /// Byte offset of the earliest stop string in the text not yet released (a stop string
    /// may begin in held-back text only, so the search starts a stop's length before it).
    fn first_stop(&self) -> Option<usize> {
        let text = &self.text;
        let longest = self.stop.iter().map(String::len).max().unwrap_or(0);
        let mut from = self.sent.saturating_sub(longest).min(text.len());
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        self.stop
            .iter()
            .filter_map(|s| text[from..].find(s.as_str()).map(|i| from + i))
            .filter(|&at| at >= self.sent)
            .min()
    }

    /// Bytes at the end of the text that are a proper prefix of some stop string.
    fn held_back(&self) -> usize {
        let text = &self.text;
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
