; Indentation (nvim-treesitter / Helix convention): the inside of a bracket pair is indented.
[
  (block)
  (list)
  (arguments)
  (import_list)
] @indent.begin

[
  "}"
  "]"
  ")"
] @indent.branch @indent.end
