//! Long explanations for `peftc explain CODE`: what the code means, an example that triggers
//! it, and the fix. Prose only.

use crate::syntax::Code;

/// The explanation of `code`: title, text, example and fix.
pub fn explain(code: Code) -> String {
    let (what, bad, good) = text(code);
    format!(
        "{} {}\n\n{}\n\nExample:\n\n{}\n\nFix:\n\n{}\n",
        code.as_str(),
        code.title(),
        what,
        indent(bad),
        indent(good)
    )
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn text(code: Code) -> (&'static str, &'static str, &'static str) {
    use Code::*;
    match code {
        Syntax => ("The file does not follow the grammar of .peft at this point. The message says what was expected.", "adapter a = lora { r = }", "adapter a = lora { r = 8 }"),
        UnterminatedString => ("A string was opened with `\"` but not closed on the same line. Strings cannot span lines; write `\\n` for a line break.", "model m = hf(\"gpt2)", "model m = hf(\"gpt2\")"),
        UnknownUnit => ("A number is directly followed by letters that are not a unit. Units are %, B, KB, MB, GB, TB, KiB, MiB, GiB, TiB.", "device g = cuda(0) { memory = 24Gb }", "device g = cuda(0) { memory = 24GiB }"),
        KeywordAsName => ("Keywords (model, train, eval, gate, mix, ...) cannot name declarations.", "train eval { .. }", "train tune { .. }"),
        UnknownName => ("A reference names no declaration of the expected kind (or a train has no adapter of that name).", "train t { model = lama, .. }", "train t { model = llama, .. }"),
        DuplicateDecl => ("Two declarations share a name; every name must be unique across the file and the files it uses.", "adapter a = lora {}\nadapter a = lora { r = 4 }", "adapter a = lora {}\nadapter b = lora { r = 4 }"),
        UnknownField => ("A field is not part of this declaration's schema. Unknown fields are never ignored.", "adapter a = lora { rank_dropout = 0.1 }", "adapter a = lora { dropout = 0.1 }"),
        ForeignSpelling => ("A field is spelled as in HF PEFT, Axolotl or transformers. peftc has its own, shorter names.", "adapter a = lora { lora_alpha = 32 }", "adapter a = lora { alpha = 32 }"),
        MissingField => ("A required field (or a declaration's source) is missing.", "train t { adapters = [a], data = d.train }", "train t { model = m, adapters = [a], data = d.train }"),
        DuplicateField => ("A field is set twice in one block; the second would silently win.", "adapter a = lora { r = 8, r = 16 }", "adapter a = lora { r = 16 }"),
        UnknownModule => ("A `use` names a stdlib module that does not exist, or a name the module does not have.", "use std.recipe.{lora_default}", "use std.recipes.{lora_default}"),
        ImportCycle => ("Files import each other in a circle.", "// a.peft\nuse \"b.peft\"\n// b.peft\nuse \"a.peft\"", "// move shared declarations to common.peft\nuse \"common.peft\""),
        UnreadableImport => ("A file named in `use \"...\"` cannot be read. Paths are relative to the importing file.", "use \"shared/models.peft\"   // no such file", "use \"../shared/models.peft\""),
        WrongKind => ("A reference names a declaration of another kind than the field expects.", "train t { model = reviews, .. }   // reviews is a dataset", "train t { model = minilm, .. }"),
        ExtendCycle => ("A declaration extends itself through a chain of extensions.", "adapter a = b {}\nadapter b = a {}", "adapter a = lora {}\nadapter b = a { r = 4 }"),
        TypeMismatch => ("A value has the wrong type for its field.", "train t { epochs = \"3\", .. }", "train t { epochs = 3, .. }"),
        OutOfRange => ("A value is outside the range its field accepts.", "adapter a = lora { dropout = 1.5 }", "adapter a = lora { dropout = 0.1 }"),
        UnknownVariant => ("A name is not one of the options of this field.", "schedule = cosin", "schedule = cosine"),
        WrongUnit => ("A number carries the wrong unit (or none where one is needed).", "device g = cuda(0) { memory = 24 }", "device g = cuda(0) { memory = 24GiB }"),
        BadCall => ("A call such as `hf(..)`, `jsonl(..)` or `classify(..)` has an unknown name or wrong arguments.", "model m = huggingface(\"gpt2\")", "model m = hf(\"gpt2\")"),
        SearchMisuse => ("`sweep` or `escalate` is used wrongly: an empty list, or two escalations in one train.", "train t { lr = escalate [], .. }", "train t { lr = sweep [1e-4, 3e-4], .. }"),
        BadSplit => ("A split's parts are invalid (none, or they add up to more than 100%).", "split = { train = 90%, eval = 20% }", "split = { train = 90%, eval = 10%, seed = 7 }"),
        UnknownSplit => ("A data reference names a split the dataset does not declare.", "data = reviews.test   // split has train and eval", "data = reviews.eval"),
        ModelNotFound => ("A `local(..)` folder or `gguf(..)` file does not exist. Paths are relative to the .peft file.", "model m = gguf(\"models/missing.gguf\")", "model m = gguf(\"models/SmolLM2-135M-Instruct.Q4_1.gguf\")   // after the setup script"),
        UnknownTarget => ("A LoRA target names no module of the model's architecture.", "targets = [q_prj]   // llama", "targets = [q_proj, v_proj]   // or all_linear"),
        RankTooLarge => ("The rank is larger than min(in, out) of a targeted layer, which adds parameters but no capacity.", "adapter a = lora { r = 512 }   // on a 384-wide BERT", "adapter a = lora { r = 16 }"),
        UnsupportedModel => ("The model's config.json cannot be read or names an architecture peftc does not know (llama, mistral, qwen2, gpt2, bert).", "model m = local(\"models/t5\")", "model m = local(\"models/llama-tiny\")"),
        TaskMismatch => ("The task does not fit the model or the data: an encoder trained as a causal LM, labels that differ between model and data, or a chat template the model lacks.", "model bert = hf(\"google-bert/bert-base-uncased\")   // causal by default", "model bert = hf(\"google-bert/bert-base-uncased\") { task = classify(labels = [\"neg\", \"pos\"]) }"),
        BadGguf => ("The file is not a readable GGUF model (wrong magic, unsupported version, truncated header).", "model m = gguf(\"weights.bin\")", "model m = gguf(\"model.Q4_1.gguf\")"),
        DataNotFound => ("No file matches a data source path or glob. Paths are relative to the .peft file.", "dataset d = jsonl(\"data/missing.jsonl\")", "dataset d = jsonl(\"data/train.jsonl\")"),
        MissingMapping => ("The dataset does not map the fields its task needs: classification needs `text` and `label`; instruction data needs `prompt` and `completion` (or `messages`).", "dataset d = jsonl(\"d.jsonl\") { prompt = field(\"q\") }", "dataset d = jsonl(\"d.jsonl\") { prompt = field(\"q\"), completion = field(\"a\") }"),
        TemplateHole => ("A custom template has a `{hole}` that is not a mapped field.", "template = \"Q: {question}\\nA: {completion}\"", "template = \"Q: {prompt}\\nA: {completion}\""),
        CompletionOnlyWithoutPrompt => ("`completion_only = true` masks the prompt out of the loss, so the dataset must say what the prompt is.", "dataset d = jsonl(\"d.jsonl\") { text = field(\"t\"), completion_only = true }", "dataset d = jsonl(\"d.jsonl\") { prompt = field(\"q\"), completion = field(\"a\"), completion_only = true }"),
        GateUnknownMetric => ("A gate reads a metric its eval (or the other eval it names) does not compute.", "metrics = [loss]\ngate accuracy >= 0.8", "metrics = [loss, accuracy]\ngate accuracy >= 0.8"),
        BadGate => ("A gate is not a comparison of metrics and numbers, or names something that is not a metric.", "gate accuracy", "gate accuracy >= 0.85"),
        MetricForTask => ("The metric cannot be computed for this task: accuracy and f1 need a classifier; perplexity and exact_match need a causal LM.", "metrics = [accuracy]   // causal model", "metrics = [loss, perplexity]"),
        StackBases => ("Adapters combined in one stack or mix were trained on different base models.", "merge m = llama + mix { a.x: 0.5, b.y: 0.5 }   // b trained on mistral", "merge m = llama + mix { a.x: 0.5, c.y: 0.5 }   // both on llama"),
        BadMix => ("A mix is empty, has a non-positive weight, or is used where adapters are trained.", "adapters = mix { a: 0.7 }   // in a train", "merge m = llama + mix { t.a: 0.7, u.b: 0.3 }"),
        OutOfMemory => ("The estimated peak memory of a train exceeds the declared device memory. The help line says what would fit.", "device g = cuda(0) { memory = 24GiB }\ntrain t { model = llama13b, on g, .. }", "quant q4 = nf4 { double_quant = true }\ntrain t { model = llama13b quantized q4, on g, .. }"),
        ExportFormat => ("The export's format does not fit its source: `as merged` needs a merge; `as peft` needs a LoRA adapter.", "export blended to \"out\" as peft   // blended is a merge", "export blended to \"out\" as merged"),
        UnusedDecl => ("A declaration is never used by a train, eval, merge or export.", "dataset spare = jsonl(\"x.jsonl\") { text = field(\"t\") }", "// remove it, or use it: data = spare"),
        UnusedImport => ("A name imported with `use` is never used.", "use std.recipes.{lora_default, qlora}   // qlora unused", "use std.recipes.{lora_default}"),
        ShapesUnknown => ("An `hf(..)` model is not in the local Hugging Face cache and matches no stdlib preset, so targets, ranks and memory cannot be checked.", "model m = hf(\"someone/new-model\")", "model m = hf(\"someone/new-model\") { shape = { arch = llama, hidden = 2048, intermediate = 5632, layers = 22, heads = 32, kv_heads = 4, vocab = 32000 } }"),
        SearchUndecided => ("A `sweep` is decided by the evals of its train (the best point whose gates pass is used); with none, the points are ranked by their final training loss, which favours overfitting. An `escalate` moves on only when a gate over its train fails; with no gate, only the first value is ever trained.", "train t { .., lr = sweep [1e-4, 3e-4] }   // nothing evaluates t", "train t { .., lr = sweep [1e-4, 3e-4] }\neval t_check { model = t, data = d.eval, metrics = [loss], gate loss < baseline.loss }"),
        HighRank => ("A rank above 256 rarely helps unless the data set is large, and makes the adapter big.", "adapter a = lora { r = 512, alpha = 1024 }", "adapter a = lora { r = 64, alpha = 128 }"),
        AlphaRatio => ("alpha / r far from 1-2 scales the update unusually (too weak or too strong).", "adapter a = lora { r = 64, alpha = 8 }", "adapter a = lora { r = 64, alpha = 128 }"),
        ImplicitCombination => ("Adapters from several trains are active together without a declared combination; their deltas are simply added.", "eval e { model = llama, adapters = [a.x, b.y], .. }", "eval e { model = llama, adapters = mix { a.x: 0.5, b.y: 0.5 }, .. }"),
        ForeignBase => ("An adapter trained on one base model is applied to another.", "merge m = mistral + tune.sent   // tune trained on llama", "merge m = llama + tune.sent"),
        MergeQuantizedUnchecked => ("Merging into a quantized base rounds the update; nothing measures the result again.", "merge m = llama quantized q4 + t.a", "merge m = llama quantized q4 + t.a\neval m_check { model = m, data = d.eval, metrics = [loss], gate loss <= baseline.loss }"),
        ExportEmptyPath => ("An export names no destination. An empty path would be the folder of the .peft file itself, which peftc never replaces.", "export t.a to \"\" as peft", "export t.a to \"out/a\" as peft"),
        ExportOverProject => ("An export's destination is the project folder (the folder of the .peft file, `.` or `\"\"`) or a folder above it (`..`). Publishing an export replaces its destination folder, which would remove the project; peftc refuses it.", "export t.a to \".\" as peft", "export t.a to \"out/a\" as peft"),
        ExportOverInput => ("An export's destination is one of the pipeline's own inputs (a model folder or file, a data file, a .peft file it loads, the .peft/ cache), lies inside one, or contains one. Publishing would replace or mix with what the pipeline reads; peftc refuses it.", "model m = local(\"models/llama\")\nexport t.a to \"models/llama\" as peft", "export t.a to \"out/a\" as peft"),
        ExportOverlap => ("Two exports write the same folder, or one writes inside the other's folder; each would replace the other's files.", "export t.a to \"out\" as peft\nexport t.b to \"out/b\" as peft", "export t.a to \"out/a\" as peft\nexport t.b to \"out/b\" as peft"),
        ExportOutsideProject => ("An export writes outside the project folder (the folder of the .peft file). `peftc check` warns; `peftc run` refuses it unless the export says `outside_project = true`, so that a path such as `../../x` or an absolute path is never written by mistake. Whatever the destination, peftc replaces only a folder it exported itself.", "export t.a to \"/srv/adapters/a\" as peft", "export t.a to \"/srv/adapters/a\" as peft { outside_project = true }"),
        NotPortable => ("The runtime named in `serve_on` cannot load this adapter (DoRA, modules_to_save such as a classification head, embedding targets, a rank above its limit, or a bottleneck adapter).", "export t.a to \"out\" as peft { serve_on = vllm }   // a uses dora", "export t.a to \"out\" as peft { serve_on = peft }"),
        QuantOptionUnused => ("`block` and `double_quant` are options of the bitsandbytes 4-bit formats (`nf4`, `fp4`). int8 keeps one absmax scale per output row and the GGML formats (`q8_0`, `q4k`, `q5k`, `q6k`) have fixed block sizes, so these options would change nothing.", "quant q8 = int8 { block = 128 }", "quant q8 = int8"),
        GgufUnsupported => ("The GGUF file's architecture or tokenizer cannot be built by the runtime. GGUF bases of architecture llama, mistral and qwen2 with a byte-level BPE tokenizer (`tokenizer.ggml.model = gpt2`) are supported; SentencePiece tokenizers (`tokenizer.ggml.model = llama`, most Llama-2 and Mistral GGUFs) and gpt2 or bert GGUFs are not.", "model m = gguf(\"models/llama-2-7b.Q4_K_M.gguf\")   // SentencePiece tokenizer", "model m = hf(\"meta-llama/Llama-2-7b-hf\")   // the safetensors model, quantized by peftc:\nquant q4 = nf4 { double_quant = true }"),
        WeightsNotGguf => ("`weights = dense` dequantizes a GGUF base's quantized linear weights on purpose (more memory, exact f32 matmuls). Hugging Face models are already dense; quantize them with a `quant` declaration instead.", "model m = local(\"models/llama\") { weights = dense }", "model m = gguf(\"models/smol.gguf\") { weights = dense }"),
        ComputeConflict => ("With a quantized base, the `compute` dtype of the `quant` declaration is the dtype of the activations and of the weights kept dense (embeddings, norms, head). The model's `dtype` says the same for an unquantized base; when both are written they must agree.", "model m = local(\"m\") { dtype = f32 }\nquant q = nf4 { compute = bf16 }", "model m = local(\"m\")\nquant q = nf4 { compute = bf16 }"),
        QuantLayersDense => ("GGML formats store a weight row in whole blocks (32 values for q8_0, 256 for the k-quants), so a layer whose input width is not a multiple of the block stays dense (f32). The memory estimate counts those layers dense.", "quant q = q4k   // on a model with hidden size 576", "quant q = q8_0   // blocks of 32 fit 576"),
    }
}
