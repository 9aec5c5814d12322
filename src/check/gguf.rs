//! Reads the metadata header and tensor table of a GGUF file (never the weights) to learn the
//! architecture, sizes, exact parameter count and stored bytes, and whether a chat template is
//! present. Reads through [`World`] only as much of the file as the header takes (starting with
//! 1 MiB, growing while the header goes on, never past [`PREFIX`]), skips the values the checker
//! does not need (the vocabulary, merges, the chat template's text) without copying them, and
//! remembers the result per file state ([`super::meta_cache`]).

use super::hir::{Arch, GgufHeld, ModelShape, ShapeOrigin};
use super::meta_cache::StampCache;
use super::world::World;
use std::collections::HashMap;
use std::path::Path;

/// At most this much of the file is read (metadata with a large vocabulary fits easily).
const PREFIX: usize = 32 << 20;
/// The first read; a header larger than this is read again with four times as much.
const FIRST_READ: usize = 1 << 20;

/// Headers read before, by file state.
static HEADERS: StampCache<Result<GgufInfo, String>> = StampCache::new();

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Int(u64),
    Float(f64),
    Str(String),
    /// A value the checker does not read (arrays, strings of other keys).
    Other,
}

/// Why a header could not be read.
enum Failure {
    /// The bytes ended inside the header: read more of the file, if there is more.
    Truncated,
    Bad(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Bad(s)
    }
}

impl From<&str> for Failure {
    fn from(s: &str) -> Self {
        Failure::Bad(s.to_string())
    }
}

struct Reader<'b> {
    b: &'b [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Failure> {
        let end = self.at.checked_add(n).ok_or(Failure::Truncated)?;
        let s = self.b.get(self.at..end).ok_or(Failure::Truncated)?;
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Failure> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, Failure> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, Failure> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn str_len(&mut self) -> Result<usize, Failure> {
        let n = usize::try_from(self.u64()?).map_err(|_| "bad string length")?;
        if n > 64 << 20 {
            return Err("a string in the header is too long".into());
        }
        Ok(n)
    }
    fn string(&mut self) -> Result<String, Failure> {
        let n = self.str_len()?;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    /// A value of type `ty`; strings are copied only when `keep`.
    fn value(&mut self, ty: u32, keep: bool) -> Result<Val, Failure> {
        Ok(match ty {
            0 | 1 | 7 => Val::Int(u64::from(self.array::<1>()?[0])),
            2 | 3 => Val::Int(u64::from(u16::from_le_bytes(self.array()?))),
            4 | 5 => Val::Int(u64::from(self.u32()?)),
            6 => Val::Float(f64::from(f32::from_bits(self.u32()?))),
            8 if keep => Val::Str(self.string()?),
            8 => {
                let n = self.str_len()?;
                self.take(n)?;
                Val::Other
            }
            9 => {
                let inner = self.u32()?;
                let n = self.u64()?;
                match fixed_size(inner) {
                    // Numbers: skip the whole array at once.
                    Some(size) => {
                        let bytes = n.checked_mul(size).ok_or("an array is too long")?;
                        let bytes = usize::try_from(bytes).map_err(|_| "an array is too long")?;
                        self.take(bytes)?;
                    }
                    None if inner == 9 => return Err("nested arrays are not supported".into()),
                    None => {
                        for _ in 0..n {
                            self.value(inner, false)?;
                        }
                    }
                }
                Val::Other
            }
            10 | 11 => Val::Int(self.u64()?),
            12 => Val::Float(f64::from_bits(self.u64()?)),
            t => return Err(format!("unknown metadata type {t}").into()),
        })
    }
}

/// Bytes of one value of a fixed-size metadata type.
fn fixed_size(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

/// (elements per block, bytes per block) of a GGML tensor type.
fn type_size(t: u32) -> (u64, u64) {
    match t {
        0 => (1, 4),
        1 | 30 => (1, 2),
        2 => (32, 18),
        3 => (32, 20),
        6 => (32, 22),
        7 => (32, 24),
        8 => (32, 34),
        9 => (32, 36),
        10 => (256, 84),
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        _ => (1, 4),
    }
}

/// What a GGUF header says.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufInfo {
    pub shape: ModelShape,
    pub has_chat_template: bool,
}

/// Reads the header of the GGUF file at `path` (once per file state per process).
pub fn read(world: &dyn World, path: &Path) -> Result<GgufInfo, String> {
    HEADERS.get(world, path, || read_uncached(world, path))
}

fn read_uncached(world: &dyn World, path: &Path) -> Result<GgufInfo, String> {
    let mut limit = FIRST_READ;
    loop {
        let bytes = world.read_prefix(path, limit).map_err(|e| e.to_string())?;
        match parse(&bytes, path) {
            Ok(info) => return Ok(info),
            Err(Failure::Bad(e)) => return Err(e),
            Err(Failure::Truncated) if bytes.len() == limit && limit < PREFIX => {
                limit = (limit * 4).min(PREFIX);
            }
            Err(Failure::Truncated) if bytes.len() == limit => {
                return Err(format!(
                    "the header is larger than the {} MiB peftc reads",
                    PREFIX >> 20
                ))
            }
            Err(Failure::Truncated) => return Err("the header is truncated".into()),
        }
    }
}

fn parse(bytes: &[u8], path: &Path) -> Result<GgufInfo, Failure> {
    let mut r = Reader { b: bytes, at: 0 };
    if r.take(4)? != b"GGUF" {
        return Err("the file does not start with the GGUF magic bytes".into());
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(format!("GGUF version {version} is not supported (2 and 3 are)").into());
    }
    let n_tensors = r.u64()?;
    let n_kv = r.u64()?;
    let mut kv: HashMap<String, Val> = HashMap::new();
    let mut vocab_len = None;
    for _ in 0..n_kv {
        let key = r.string()?;
        let ty = r.u32()?;
        if key == "tokenizer.ggml.tokens" && ty == 9 {
            let save = r.at;
            let _inner = r.u32()?;
            vocab_len = Some(r.u64()?);
            r.at = save;
        }
        let keep = key == "general.architecture" || key == "tokenizer.ggml.model";
        let v = r.value(ty, keep)?;
        kv.insert(key, v);
    }
    let mut params = 0u64;
    let mut stored = 0u64;
    let mut has_output = false;
    let (mut linear_bytes, mut linear_params, mut dense_params) = (0u64, 0u64, 0u64);
    for _ in 0..n_tensors {
        let name = r.string()?;
        has_output |= name == "output.weight";
        let dims = r.u32()?;
        if dims > 8 {
            return Err("a tensor has more than 8 dimensions".into());
        }
        let mut n = 1u64;
        for _ in 0..dims {
            n = n.saturating_mul(r.u64()?);
        }
        let ty = r.u32()?;
        let _offset = r.u64()?;
        let (block, size) = type_size(ty);
        params += n;
        let bytes = n.div_ceil(block) * size;
        stored += bytes;
        // The runtime keeps 2-D linear weights in their stored form and dequantizes the token
        // and position embeddings and the 1-D tensors (norms, biases).
        if dims >= 2 && name != "token_embd.weight" && name != "position_embd.weight" {
            linear_bytes += bytes;
            linear_params += n;
        } else {
            dense_params += n;
        }
    }
    let arch_name = match kv.get("general.architecture") {
        Some(Val::Str(s)) => s.clone(),
        _ => return Err("no `general.architecture` in the metadata".into()),
    };
    let arch = Arch::parse(&arch_name).ok_or_else(|| {
        format!(
            "architecture `{arch_name}` is not supported (llama, mistral, qwen2, gpt2, bert are)"
        )
    })?;
    let int = |k: &str| match kv.get(&format!("{arch_name}.{k}")) {
        Some(Val::Int(i)) => Some(*i),
        Some(Val::Float(f)) => Some(*f as u64),
        _ => None,
    };
    let hidden = int("embedding_length").ok_or("no embedding_length in the metadata")?;
    let heads = int("attention.head_count").unwrap_or(1).max(1);
    let shape = ModelShape {
        arch,
        hidden,
        intermediate: int("feed_forward_length").unwrap_or(4 * hidden),
        layers: int("block_count").ok_or("no block_count in the metadata")?,
        heads,
        kv_heads: int("attention.head_count_kv").unwrap_or(heads).max(1),
        vocab: int("vocab_size").or(vocab_len).unwrap_or(0),
        context: int("context_length").unwrap_or(2048),
        tied_embeddings: !has_output,
        explicit_head_dim: int("attention.key_length").filter(|d| *d > 0),
        params,
        stored_bytes: Some(stored),
        gguf: Some(GgufHeld {
            linear_bytes,
            linear_params,
            dense_params,
            tokenizer: match kv.get("tokenizer.ggml.model") {
                Some(Val::Str(s)) => Some(s.clone()),
                _ => None,
            },
        }),
        origin: ShapeOrigin::GgufHeader(path.to_path_buf()),
    };
    Ok(GgufInfo {
        shape,
        has_chat_template: kv.contains_key("tokenizer.chat_template"),
    })
}
