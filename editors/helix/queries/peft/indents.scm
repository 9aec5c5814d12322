; Indentation for .peft in Helix's convention: the inside of a bracket pair is indented.
[
  (block)
  (list)
  (map)
  (arguments)
  (import_list)
] @indent

[
  "}"
  "]"
  ")"
] @outdent
