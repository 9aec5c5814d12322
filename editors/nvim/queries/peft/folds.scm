; Folding: blocks, lists, maps, argument lists and runs of comments.
[
  (block)
  (list)
  (map)
  (arguments)
  (import_list)
] @fold
