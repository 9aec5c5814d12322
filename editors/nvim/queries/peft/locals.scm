; Scopes, definitions and references for .peft (nvim-treesitter / tree-sitter CLI convention).
; Every top-level declaration is visible in the whole file, so the file is the only scope.

(source_file) @local.scope

(model_declaration name: (identifier) @local.definition)
(quant_declaration name: (identifier) @local.definition)
(adapter_declaration name: (identifier) @local.definition)
(dataset_declaration name: (identifier) @local.definition)
(train_declaration name: (identifier) @local.definition)
(eval_declaration name: (identifier) @local.definition)
(merge_declaration name: (identifier) @local.definition)
(device_declaration name: (identifier) @local.definition)
(let_declaration name: (identifier) @local.definition)
(import_item name: (identifier) @local.definition)
(import_item alias: (identifier) @local.definition)
(use_declaration alias: (identifier) @local.definition)

(reference base: (identifier) @local.reference)
(field value: (identifier) @local.reference)
(list (identifier) @local.reference)
(mix_expression (block (field key: (identifier) @local.reference)))
(mix_expression (block (field key: (key_path . (identifier) @local.reference))))
(on_clause device: (identifier) @local.reference)
(quantized_expression (identifier) @local.reference)
(binary_expression (identifier) @local.reference)
(let_declaration value: (identifier) @local.reference)
(merge_declaration value: (identifier) @local.reference)
(export_statement source: (identifier) @local.reference)
