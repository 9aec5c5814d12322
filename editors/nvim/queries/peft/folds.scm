; Folding: blocks, lists, maps, argument lists and runs of comments.
[
  (block)
  (list)
  (arguments)
  (import_list)
] @fold
