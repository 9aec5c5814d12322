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
        MetricForTask => ("The metric cannot be computed for this task: f1 needs a classifier; perplexity and exact_match need a causal LM. `accuracy` fits both: for a causal LM it is the share of completion tokens predicted exactly (the argmax of the next-token distribution). Metric names of the Hugging Face Trainer (`eval_loss`, `eval_accuracy`) are written without the prefix.", "metrics = [f1]   // causal model", "metrics = [loss, perplexity, accuracy]"),
        StackBases => ("Adapters combined in one stack or mix were trained on different base models.", "merge m = llama + mix { a.x: 0.5, b.y: 0.5 }   // b trained on mistral", "merge m = llama + mix { a.x: 0.5, c.y: 0.5 }   // both on llama"),
        BadMix => ("A mix is empty, has a non-positive weight, or is used where adapters are trained.", "adapters = mix { a: 0.7 }   // in a train", "merge m = llama + mix { t.a: 0.7, u.b: 0.3 }"),
        OutOfMemory => ("The estimated peak memory of a train exceeds the declared device memory. The help line says what would fit.", "device g = cuda(0) { memory = 24GiB }\ntrain t { model = llama13b, on g, .. }", "quant q4 = nf4 { double_quant = true }\ntrain t { model = llama13b quantized q4, on g, .. }"),
        ExportFormat => ("The export's format does not fit its source: `as merged` needs a merge; `as peft` needs a LoRA adapter.", "export blended to \"out\" as peft   // blended is a merge", "export blended to \"out\" as merged"),
        DataFieldMissing => ("`peftc check` reads the first rows of every data file (64 KiB of each, with the run's own readers) and maps them as the run will. A `field(\"..\")` that no row has would stop the tokenize stage; one missing in some rows stops it too unless `skip_invalid = true`. The help lists the rows' real keys.", "dataset qa = jsonl(\"qa.jsonl\") { prompt = field(\"question\"), completion = field(\"answer\") }   // rows have q and a", "dataset qa = jsonl(\"qa.jsonl\") { prompt = field(\"q\"), completion = field(\"a\") }"),
        DataFieldType => ("A mapped field holds a value of the wrong type in the first rows of the data: `text`, `prompt` and `completion` need strings, `label` a string or an integer, `messages` a list of `{role, content}` objects.", "dataset d = jsonl(\"d.jsonl\") { text = field(\"meta\"), label = field(\"label\") }   // meta is an object", "dataset d = jsonl(\"d.jsonl\") { text = field(\"meta.body\"), label = field(\"label\") }"),
        DataLabelUnknown => ("A label in the first rows of the data is not one of the declared labels (a string label must be one of them; an integer is a class index).", "task = classify(labels = [\"neg\", \"pos\"])   // the data says \"positive\"", "task = classify(labels = [\"negative\", \"positive\"])"),
        DataMalformed => ("A record in the first 64 KiB of a data file cannot be parsed by the run's reader (bad JSON, a CSV row with the wrong number of cells). The run would stop there.", "dataset d = jsonl(\"d.jsonl\")   // line 3: {\"text\": \"hi\"", "dataset d = jsonl(\"d.jsonl\") { skip_invalid = true }   // or fix line 3"),
        TemplateIsBuiltin => ("A template written in quotes is a custom template string; \"alpaca\" would turn every example into the word alpaca. Built-in templates are bare names.", "template = \"alpaca\"", "template = alpaca"),
        DeviceNotBuilt => ("A `cuda(..)` or `metal` device was declared but this peftc was built without that backend, so the run could only train on the CPU. peftc refuses instead of training elsewhere without a word.", "device gpu = cuda(0)   // peftc built without --features cuda", "device cpu0 = cpu   // or rebuild: cargo install peftc --features cuda"),
        ContextTooShort => ("`max_len` is longer than the model's context length (`max_position_embeddings`, or the GGUF context length): positions past it have no embedding (GPT-2, BERT) or were never trained (RoPE models).", "max_len = 4096   // gpt2: 1024 positions", "max_len = 1024"),
        ModelFolderIncomplete => ("A model folder must hold safetensors weights (`model.safetensors`, or shards with `model.safetensors.index.json`) and `tokenizer.json`. Pickled `.bin`/`.pt` checkpoints can run code when loaded and are never read.", "model m = local(\"models/old\")   // only pytorch_model.bin", "// convert once in Python: model.save_pretrained(\"models/old\", safe_serialization=True)\nmodel m = local(\"models/old\")"),
        DataWithoutSplit => ("A dataset that declares a split is referenced without naming a part, so the train or eval would read every row, including the rows held out for the other parts.", "data = reviews   // reviews has split = { train = 90%, eval = 10% }", "data = reviews.train"),
        MetricNeedsCompletion => ("`exact_match` compares a generated completion with the reference completion, so the data must map `completion` (or `messages`); on plain text it would score 0.", "dataset d = text(\"corpus.txt\")\neval e { .., data = d, metrics = [exact_match] }", "eval e { .., data = d, metrics = [loss, perplexity] }"),
        UnusedArgument => ("A call got an argument it does not take (a named argument such as `field(\"q\", default = \"\")`, or one positional argument too many). peftc never drops an argument silently.", "dataset d = jsonl(\"d.jsonl\") { text = field(\"t\", nested = true) }", "dataset d = jsonl(\"d.jsonl\") { text = field(\"t\") }"),
        GateNeverPasses => ("Whatever the metrics turn out to be, this gate fails: a threshold outside the metric's range (accuracy, f1 and exact_match lie in 0..1; loss is at least 0; perplexity at least 1), or a model compared strictly with itself (a `baseline.` gate in an eval of the base model).", "gate accuracy >= 85   // a percentage written as a number", "gate accuracy >= 0.85"),
        AdaptersNotCombinable => ("The adapters cannot be put together the way they are declared: a weighted `mix` combines LoRA adapters only (no DoRA, no bottleneck adapters), and only one bottleneck adapter can be active at a time. The same rule decides what the run can combine.", "merge m = llama + mix { t.lora: 0.5, u.houlsby: 0.5 }", "merge m = llama + mix { t.lora: 0.5, v.lora2: 0.5 }"),
        AdapterShapeMismatch => ("An adapter trained on one base is applied to a base of another shape (hidden size, layers or vocabulary differ): its matrices cannot be added to the base's weights.", "merge m = llama_7b + tune.a   // tune trained on a 135M model", "merge m = small + tune.a"),
        SplitTooSmall => ("When the data files were read whole, the check knows how many rows there are and sizes the split exactly as the run does (`runtime::data::split::split_sizes`): a part that gets no rows, or counts that ask for more rows than there are, would stop the run.", "split = { train = 90%, eval = 10% }   // 5 rows: eval gets none", "split = { train = 3, eval = 2 }"),
        EscalationNotUp => ("`escalate [..]` trains the first value and moves to the next only while a gate fails, so its values must grow in capacity: a rank, a bottleneck size, epochs or steps that go down (or repeat) retry with less after a failure.", "r = escalate [32, 16, 8]", "r = escalate [8, 16, 32]"),
        TemplateWithoutHole => ("A custom template without a `{..}` hole renders every example as the same text: nothing of the data reaches the model.", "template = \"Answer the question.\"", "template = \"Answer the question.\\n{prompt}\\n{completion}\""),
        EpochsIgnored => ("As in the Hugging Face Trainer, `max_steps` overrides `epochs`: the run takes exactly `max_steps` optimizer steps and repeats the data as needed. Setting both suggests one of them is not what you expect.", "train t { .., epochs = 3, max_steps = 500 }", "train t { .., max_steps = 500 }   // or: epochs = 3"),
        EvalOverlapsTrain => ("An eval reads rows the train learned from (the same dataset and split, a dataset used whole, or another declaration of the same file), so its metrics measure memorisation and its gates pass for the wrong reason.", "train t { .., data = reviews }\neval e { model = t, data = reviews, .. }", "dataset reviews = jsonl(\"r.jsonl\") { .., split = { train = 90%, eval = 10%, seed = 7 } }\ntrain t { .., data = reviews.train }\neval e { model = t, data = reviews.eval, .. }"),
        WarmupLongerThanRun => ("The warmup takes as many steps as the whole run (or more), so the learning rate never reaches `lr` and the schedule never decays.", "max_steps = 100\nschedule = cosine { warmup = 200 }", "max_steps = 100\nschedule = cosine { warmup = 10% }"),
        GateNeverFails => ("Whatever the metrics turn out to be, this gate passes (`accuracy >= 0`, `loss >= 0`, a model compared with itself with `>=`), so it protects nothing.", "gate accuracy >= 0", "gate accuracy >= baseline.accuracy + 0.05"),
        LearningRateUnusual => ("The learning rate is far outside what the adapter kind trains with: LoRA and bottleneck adapters usually use 5e-5 to 1e-3 with AdamW (QLoRA: 2e-4); a full-fine-tuning rate such as 1e-6 barely moves an adapter, and 1e-1 diverges.", "train t { .., lr = 2e-6 }", "train t { .., lr = 2e-4 }"),
        ExportUngated => ("An export writes an adapter or model that no gate ever judged: no eval with a gate reads the train or merge it exports, so a run that learned nothing still exports.", "export tune.a to \"out\" as peft   // no eval of tune has a gate", "eval check { model = tune, data = d.eval, metrics = [loss], gate loss < baseline.loss }\nexport tune.a to \"out\" as peft"),
        LabelImbalance => ("One label makes up most of the data, so accuracy rewards always answering it: a model that learned nothing scores the majority share. Gate on f1 (macro-averaged) or on accuracy against the baseline.", "gate accuracy >= 0.9   // 95% of the rows are \"pos\"", "gate f1 >= 0.7\ngate accuracy >= baseline.accuracy + 0.02"),
        CompletionTruncated => ("In most of the first rows the prompt alone has at least `max_len` words (each word is at least one token), so truncation cuts the completion off entirely and those rows train on nothing.", "max_len = 32   // prompts of 50-100 words", "max_len = 512"),
        FewSteps => ("With the data's size (known when the files were read whole), the batch size, accumulation and epochs, the train takes one or two optimizer steps: the schedule and the metrics mean little.", "batch = 64, epochs = 1   // 40 rows", "batch = 8, epochs = 3"),
        UnusedDecl => ("A declaration is never used by a train, eval, merge or export.", "dataset spare = jsonl(\"x.jsonl\") { text = field(\"t\") }", "// remove it, or use it: data = spare"),
        UnusedImport => ("A name imported with `use` is never used.", "use std.recipes.{lora_default, qlora}   // qlora unused", "use std.recipes.{lora_default}"),
        ShapesUnknown => ("An `hf(..)` model is not in the local Hugging Face cache and matches no stdlib preset, so targets, ranks and memory cannot be checked.", "model m = hf(\"someone/new-model\")", "model m = hf(\"someone/new-model\") { shape = { arch = llama, hidden = 2048, intermediate = 5632, layers = 22, heads = 32, kv_heads = 4, vocab = 32000 } }"),
        SearchUndecided => ("A `sweep` is decided by the evals of its train (the best point whose gates pass is used); with none, the points are ranked by their final training loss, which favours overfitting. An `escalate` moves on only when a gate over its train fails; with no gate, only the first value is ever trained.", "train t { .., lr = sweep [1e-4, 3e-4] }   // nothing evaluates t", "train t { .., lr = sweep [1e-4, 3e-4] }\neval t_check { model = t, data = d.eval, metrics = [loss], gate loss < baseline.loss }"),
        HighRank => ("A rank above 256 rarely helps unless the data set is large, and makes the adapter big.", "adapter a = lora { r = 512, alpha = 1024 }", "adapter a = lora { r = 64, alpha = 128 }"),
        AlphaRatio => ("alpha / r far from 1-2 scales the update unusually (too weak or too strong).", "adapter a = lora { r = 64, alpha = 8 }", "adapter a = lora { r = 64, alpha = 128 }"),
        ImplicitCombination => ("Adapters from several trains are active together without a declared combination; their deltas are simply added.", "eval e { model = llama, adapters = [a.x, b.y], .. }", "eval e { model = llama, adapters = mix { a.x: 0.5, b.y: 0.5 }, .. }"),
        ForeignBase => ("An adapter trained on one base model is applied to another.", "merge m = mistral + tune.sent   // tune trained on llama", "merge m = llama + tune.sent"),
        MergeQuantizedUnchecked => ("Merging into a quantized base rounds the update; nothing measures the result again.", "merge m = llama quantized q4 + t.a", "merge m = llama quantized q4 + t.a\neval m_check { model = m, data = d.eval, metrics = [loss], gate loss <= baseline.loss }"),
        NotPortable => ("The runtime named in `serve_on` cannot load this adapter (DoRA, modules_to_save such as a classification head, embedding targets, a rank above its limit, or a bottleneck adapter).", "export t.a to \"out\" as peft { serve_on = vllm }   // a uses dora", "export t.a to \"out\" as peft { serve_on = peft }"),
    }
}
