; Indentation (nvim-treesitter / Helix convention): the inside of a bracket pair is indented.
[
  (block)
  (list)
  (map)
  (arguments)
  (import_list)
] @indent.begin

[
  "}"
  "]"
  ")"
] @indent.branch @indent.end
