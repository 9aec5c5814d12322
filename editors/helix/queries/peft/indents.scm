; Indentation for .peft in Helix's convention: the inside of a bracket pair is indented.
[
  (block)
  (list)
  (arguments)
  (import_list)
] @indent

[
  "}"
  "]"
  ")"
] @outdent
