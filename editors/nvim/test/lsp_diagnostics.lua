-- Headless Neovim check: open a .peft file with `peftc lsp` attached and print, as one JSON
-- line on stdout, the diagnostics Neovim received. Run by run_lsp_diagnostics.sh:
--   nvim --headless -u NONE -i NONE -l lsp_diagnostics.lua PEFTC_BIN FILE [TIMEOUT_MS]
-- It must not judge the diagnostics: the caller compares them with what it expects.
local peftc, file, timeout = arg[1], arg[2], tonumber(arg[3] or '15000')
if not peftc or not file then
  io.stderr:write('usage: nvim --headless -u NONE -i NONE -l lsp_diagnostics.lua PEFTC_BIN FILE [TIMEOUT_MS]\n')
  os.exit(2)
end

local here = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h')
vim.opt.runtimepath:prepend(vim.fn.fnamemodify(here .. '/..', ':p'))
vim.env.PEFTC_BIN = peftc
vim.cmd('filetype on')
require('peft').setup({ cmd = { peftc, 'lsp' } })

-- Collect every publishDiagnostics the client receives, not only the last state.
local published = 0
local orig = vim.lsp.handlers['textDocument/publishDiagnostics']
vim.lsp.handlers['textDocument/publishDiagnostics'] = function(err, result, ctx, config)
  published = published + 1
  return orig(err, result, ctx, config)
end

vim.cmd.edit(vim.fn.fnameescape(file))
local buf = vim.api.nvim_get_current_buf()

local attached = vim.wait(timeout, function()
  return #vim.lsp.get_clients({ bufnr = buf, name = 'peftc' }) > 0
end, 20)
local got = attached and vim.wait(timeout, function() return published > 0 end, 20)

local out = {
  file = vim.fn.fnamemodify(file, ':p'),
  filetype = vim.bo[buf].filetype,
  attached = attached,
  published = published,
  diagnostics = {},
}
for _, d in ipairs(vim.diagnostic.get(buf)) do
  table.insert(out.diagnostics, {
    lnum = d.lnum,
    col = d.col,
    end_lnum = d.end_lnum,
    end_col = d.end_col,
    severity = vim.diagnostic.severity[d.severity],
    code = d.code,
    source = d.source,
    message = d.message,
  })
end
io.stdout:write(vim.json.encode(out) .. '\n')
for _, client in ipairs(vim.lsp.get_clients()) do
  client:stop(true)
end
os.exit((attached and got) and 0 or 1)
