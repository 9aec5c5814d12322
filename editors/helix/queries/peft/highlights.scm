; Highlights for .peft in Helix's scope names. GENERATED from
; editors/tree-sitter-peft/queries/highlights.scm by scripts/derive-queries.js: edit that file.
; Helix lets the first matching pattern win, so the order is reversed.

(comment) @comment.line

(doc_comment) @comment.block.documentation

(let_declaration name: (identifier) @constant)

(merge_declaration name: (identifier) @function)

(eval_declaration name: (identifier) @function)

(train_declaration name: (identifier) @function)

(device_declaration name: (identifier) @type)

(dataset_declaration name: (identifier) @type)

(adapter_declaration name: (identifier) @type)

(quant_declaration name: (identifier) @type)

(model_declaration name: (identifier) @type)

(export_statement format: (identifier) @constant)

(use_declaration alias: (identifier) @namespace)

(import_item alias: (identifier) @variable)

(import_item name: (identifier) @variable)

(module_path (identifier) @namespace)

(map_entry key: (identifier) @variable)

(reference member: (identifier) @constant.builtin.metric
  (#any-of? @constant.builtin.metric "loss" "perplexity" "accuracy" "f1" "exact_match"))

(reference member: (identifier) @variable.other.member)

(named_argument name: (identifier) @variable.parameter)

(field key: (identifier) @variable.other.member)

((identifier) @constant.builtin.placement
  (#any-of? @constant.builtin.placement "houlsby" "pfeiffer"))

((identifier) @type.builtin.adapter
  (#any-of? @type.builtin.adapter "lora" "bottleneck"))

((identifier) @constant.builtin.metric
  (#any-of? @constant.builtin.metric "loss" "perplexity" "accuracy" "f1" "exact_match"))

((identifier) @constant.builtin.optimizer
  (#any-of? @constant.builtin.optimizer "adamw" "sgd"))

((identifier) @constant.builtin.schedule
  (#any-of? @constant.builtin.schedule "constant" "linear" "cosine"))

((identifier) @constant.builtin.quant
  (#any-of? @constant.builtin.quant "nf4" "int8" "q8_0" "q4k" "q5k" "q6k" "fp4"))

((identifier) @type.builtin.dtype
  (#any-of? @type.builtin.dtype "f32" "f16" "bf16"))

((identifier) @function.builtin
  (#any-of? @function.builtin
    "hf" "local" "gguf" "jsonl" "json" "csv" "tsv" "text" "parquet" "field"
    "cuda" "cpu" "metal" "classify"))

(application base: (reference member: (identifier) @function))

(application base: (identifier) @function)

(call function: (reference member: (identifier) @function))

(call function: (identifier) @function)

(baseline) @variable.builtin

(string) @string

(escape_sequence) @constant.character.escape

(unit) @type

(integer) @constant.numeric.integer

(float) @constant.numeric.float

(boolean) @constant.builtin.boolean

[
  "to"
  "as"
  "on"
  "quantized"
] @keyword.operator

"mix" @keyword

[
  "sweep"
  "escalate"
] @keyword.control.repeat

"gate" @keyword.control.conditional

[
  "model"
  "quant"
  "adapter"
  "dataset"
  "train"
  "eval"
  "merge"
  "device"
  "let"
] @keyword

"export" @keyword.control.import

"use" @keyword.control.import

"\"" @string

[
  ","
  "."
  ":"
] @punctuation.delimiter

[
  "{"
  "}"
  "["
  "]"
  "("
  ")"
] @punctuation.bracket

[
  ">="
  "<="
  "=="
  "!="
  ">"
  "<"
  "+"
  "-"
  "*"
  "/"
  "="
] @operator

(identifier) @variable
