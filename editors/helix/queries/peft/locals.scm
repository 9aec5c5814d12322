; Locals for .peft in Helix. GENERATED from editors/tree-sitter-peft/queries/locals.scm by
; scripts/derive-queries.js: edit that file. A reference inherits its definition's highlight.
; Scopes, definitions and references for .peft (nvim-treesitter / tree-sitter CLI convention).
; Every top-level declaration is visible in the whole file, so the file is the only scope.

(source_file) @local.scope

(model_declaration name: (identifier) @local.definition.type)
(quant_declaration name: (identifier) @local.definition.type)
(adapter_declaration name: (identifier) @local.definition.type)
(dataset_declaration name: (identifier) @local.definition.type)
(train_declaration name: (identifier) @local.definition.function)
(eval_declaration name: (identifier) @local.definition.function)
(merge_declaration name: (identifier) @local.definition.function)
(device_declaration name: (identifier) @local.definition.type)
(let_declaration name: (identifier) @local.definition.constant)
(import_item name: (identifier) @local.definition.variable)
(import_item alias: (identifier) @local.definition.variable)
(use_declaration alias: (identifier) @local.definition.namespace)

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
