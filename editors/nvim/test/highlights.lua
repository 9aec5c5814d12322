-- Headless Neovim check of the tree-sitter queries as Neovim applies them: for every assertion
-- in the tree-sitter highlight tests (`// <- capture`, `//   ^ capture`) the capture Neovim
-- shows at that position must be the asserted one. Prints "N passed, N failed" and exits 1 on a
-- failure. Run by run_highlights.sh:
--   nvim --headless -u NONE -i NONE -l highlights.lua PARSER_SO FILE...
-- Neovim does not colour references through locals.scm (the tree-sitter CLI and Helix do), so an
-- assertion on a @local.reference is checked against the capture it would get without locals:
-- it must then be @variable.
local parser_so = arg[1]
local here = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h')
vim.opt.runtimepath:prepend(vim.fn.fnamemodify(here .. '/..', ':p'))
vim.treesitter.language.add('peft', { path = parser_so })

local passed, failed = 0, 0
for i = 2, #arg do
  local file = arg[i]
  local lines = vim.fn.readfile(file)
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  local parser = vim.treesitter.get_parser(buf, 'peft')
  local tree = parser:parse()[1]
  local locals = vim.treesitter.query.get('peft', 'locals')
  local refs = {}
  for id, node in locals:iter_captures(tree:root(), buf) do
    if locals.captures[id] == 'local.reference' then
      local r, c = node:range()
      refs[r .. ':' .. c] = true
    end
  end
  vim.treesitter.highlighter.new(parser)

  local last_code = 0
  for lnum, line in ipairs(lines) do
    local row = lnum - 1
    local assertions = {}
    local indent, arrow = line:match('^(%s*)//%s+<%-%s+(%S+)')
    if arrow then
      table.insert(assertions, { col = #indent, want = arrow })
    else
      local col, want = line:match('^%s*//%s*()%^%s+(%S+)')
      if col then
        table.insert(assertions, { col = col - 1, want = want })
      end
    end
    if #assertions == 0 then
      last_code = row
    end
    for _, a in ipairs(assertions) do
      local caps = vim.treesitter.get_captures_at_pos(buf, last_code, a.col)
      local got = caps[#caps] and caps[#caps].capture or '(none)'
      local want = a.want
      if refs[last_code .. ':' .. a.col] and got == 'variable' then
        want = 'variable'
      end
      if got == want then
        passed = passed + 1
      else
        failed = failed + 1
        local names = {}
        for _, c in ipairs(caps) do table.insert(names, c.capture) end
        io.stdout:write(string.format('%s:%d:%d: want %s, Neovim shows %s (captures: %s)\n',
          file, last_code + 1, a.col + 1, a.want, got, table.concat(names, ' ')))
      end
    end
  end
end
io.stdout:write(string.format('neovim highlights: %d passed, %d failed\n', passed, failed))
os.exit(failed == 0 and passed > 0 and 0 or 1)
