; Highlights for .peft in Helix's scope names. GENERATED from
; editors/tree-sitter-peft/queries/highlights.scm by scripts/derive-queries.js: edit that file.
; The last matching pattern wins, as in Neovim.

; Everything else
(identifier) @variable

; Operators and punctuation
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

[
  "{"
  "}"
  "["
  "]"
  "("
  ")"
] @punctuation.bracket

[
  ","
  "."
  ":"
] @punctuation.delimiter

"\"" @string

; Keywords
"use" @keyword.control.import

"export" @keyword.control.import

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

"gate" @keyword.control.conditional

[
  "sweep"
  "escalate"
] @keyword.control.repeat

"mix" @keyword

[
  "to"
  "as"
  "on"
  "quantized"
] @keyword.operator

; Literals
(boolean) @constant.builtin.boolean

(float) @constant.numeric.float

(integer) @constant.numeric.integer

(unit) @type

(escape_sequence) @constant.character.escape

(string) @string

(baseline) @variable.builtin

; Calls and recipe applications
(call function: (identifier) @function)

(call function: (reference member: (identifier) @function))

(application base: (identifier) @function)

(application base: (reference member: (identifier) @function))

; `adapter a = lora_default { ... }`: the head a body is applied to
[
  (model_declaration value: (identifier) @function body: (block))
  (quant_declaration value: (identifier) @function body: (block))
  (adapter_declaration value: (identifier) @function body: (block))
  (dataset_declaration value: (identifier) @function body: (block))
  (train_declaration value: (identifier) @function body: (block))
  (eval_declaration value: (identifier) @function body: (block))
  (merge_declaration value: (identifier) @function body: (block))
  (device_declaration value: (identifier) @function body: (block))
]

; Well-known names
((identifier) @function.builtin
  (#any-of? @function.builtin
    "hf" "local" "gguf" "jsonl" "json" "csv" "tsv" "text" "parquet" "field"
    "cuda" "cpu" "metal" "classify"))

((identifier) @type.builtin.dtype
  (#any-of? @type.builtin.dtype "f32" "f16" "bf16"))

((identifier) @constant.builtin.quant
  (#any-of? @constant.builtin.quant "nf4" "int8" "q8_0" "q4k" "q5k" "q6k" "fp4"))

((identifier) @constant.builtin.schedule
  (#any-of? @constant.builtin.schedule "constant" "linear" "cosine"))

((identifier) @constant.builtin.optimizer
  (#any-of? @constant.builtin.optimizer "adamw" "sgd"))

((identifier) @constant.builtin.metric
  (#any-of? @constant.builtin.metric "loss" "perplexity" "accuracy" "f1" "exact_match"))

((identifier) @type.builtin.adapter
  (#any-of? @type.builtin.adapter "lora" "bottleneck"))

((identifier) @constant.builtin.placement
  (#any-of? @constant.builtin.placement "houlsby" "pfeiffer"))

; Fields, arguments, members
(field key: (identifier) @variable.other.member)

(named_argument name: (identifier) @variable.parameter)

(reference member: (identifier) @variable.other.member)

(reference member: (identifier) @constant.builtin.metric
  (#any-of? @constant.builtin.metric "loss" "perplexity" "accuracy" "f1" "exact_match"))

(key_path (identifier) @variable.other.member)

; `mix { a: 0.7, run.b: 0.3 }`: the keys name adapters
(mix_expression (block (field key: (identifier) @variable)))

(mix_expression (block (field key: (key_path (identifier) @variable))))

; Imports and exports
(module_path (identifier) @namespace)

(import_item name: (identifier) @variable)

(import_item alias: (identifier) @variable)

(use_declaration alias: (identifier) @namespace)

(export_statement format: (identifier) @constant)

; Declaration names
(model_declaration name: (identifier) @type)

(quant_declaration name: (identifier) @type)

(adapter_declaration name: (identifier) @type)

(dataset_declaration name: (identifier) @type)

(device_declaration name: (identifier) @type)

(train_declaration name: (identifier) @function)

(eval_declaration name: (identifier) @function)

(merge_declaration name: (identifier) @function)

(let_declaration name: (identifier) @constant)

; Comments
(doc_comment) @comment.block.documentation

(comment) @comment.line
