; Text objects for .peft in Helix: a declaration is a "function", a block field an "entry".
[
  (model_declaration)
  (quant_declaration)
  (adapter_declaration)
  (dataset_declaration)
  (train_declaration)
  (eval_declaration)
  (merge_declaration)
  (device_declaration)
  (let_declaration)
  (export_statement)
] @function.around

(block) @function.inside

(field) @entry.around
(field value: (_) @entry.inside)

(arguments (_) @parameter.inside)

(comment) @comment.inside
(comment)+ @comment.around
(doc_comment) @comment.inside
(doc_comment)+ @comment.around
