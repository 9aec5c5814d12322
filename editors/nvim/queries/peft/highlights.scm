; Highlights for .peft. Capture names follow the nvim-treesitter / Zed convention.
; Order matters: when several patterns match one node the LAST one wins (tree-sitter CLI,
; Neovim, Helix), so generic patterns come first and specific ones after them. editors/helix
; holds a copy in Helix's scope names, made from this file by scripts/derive-queries.js.

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
"use" @keyword.import
"export" @keyword.import
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
"gate" @keyword.conditional
[
  "sweep"
  "escalate"
] @keyword.repeat
"mix" @keyword
[
  "to"
  "as"
  "on"
  "quantized"
] @keyword.operator

; Literals
(boolean) @boolean
(float) @number.float
(integer) @number
(unit) @type
(escape_sequence) @string.escape
(string) @string
(baseline) @variable.builtin

; Calls and recipe applications
(call function: (identifier) @function.call)
(call function: (reference member: (identifier) @function.call))
(application base: (identifier) @function.call)
(application base: (reference member: (identifier) @function.call))
; `adapter a = lora_default { ... }`: the head a body is applied to
[
  (model_declaration value: (identifier) @function.call body: (block))
  (quant_declaration value: (identifier) @function.call body: (block))
  (adapter_declaration value: (identifier) @function.call body: (block))
  (dataset_declaration value: (identifier) @function.call body: (block))
  (train_declaration value: (identifier) @function.call body: (block))
  (eval_declaration value: (identifier) @function.call body: (block))
  (merge_declaration value: (identifier) @function.call body: (block))
  (device_declaration value: (identifier) @function.call body: (block))
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
(field key: (identifier) @property)
(named_argument name: (identifier) @variable.parameter)
(reference member: (identifier) @variable.member)
(reference member: (identifier) @constant.builtin.metric
  (#any-of? @constant.builtin.metric "loss" "perplexity" "accuracy" "f1" "exact_match"))
(key_path (identifier) @property)
; `mix { a: 0.7, run.b: 0.3 }`: the keys name adapters
(mix_expression (block (field key: (identifier) @variable)))
(mix_expression (block (field key: (key_path (identifier) @variable))))

; Imports and exports
(module_path (identifier) @module)
(import_item name: (identifier) @variable)
(import_item alias: (identifier) @variable)
(use_declaration alias: (identifier) @module)
(export_statement format: (identifier) @constant)

; Declaration names
(model_declaration name: (identifier) @type.definition)
(quant_declaration name: (identifier) @type.definition)
(adapter_declaration name: (identifier) @type.definition)
(dataset_declaration name: (identifier) @type.definition)
(device_declaration name: (identifier) @type.definition)
(train_declaration name: (identifier) @function)
(eval_declaration name: (identifier) @function)
(merge_declaration name: (identifier) @function)
(let_declaration name: (identifier) @constant)

; Comments
(doc_comment) @comment.documentation
(comment) @comment

