--- peft.nvim: attaches `peftc lsp` to .peft buffers and registers the tree-sitter parser.
---
--- Needs Neovim 0.11+ (`vim.lsp.config` / `vim.lsp.enable`). It only wires things up: all
--- language features come from `peftc lsp`, highlighting from the tree-sitter queries in
--- editors/nvim/queries/peft (copies of editors/tree-sitter-peft/queries).
local M = {}

--- Directory holding this plugin (editors/nvim).
local plugin_dir = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h:h:h')

M.defaults = {
  -- Command that starts the language server; `$PEFTC_BIN` wins when set.
  cmd = { vim.env.PEFTC_BIN or 'peftc', 'lsp' },
  root_markers = { 'peftc.toml', '.git' },
  -- Directory of the tree-sitter grammar (editors/tree-sitter-peft), for nvim-treesitter.
  grammar_dir = vim.fn.fnamemodify(plugin_dir .. '/../tree-sitter-peft', ':p'),
  settings = {},
}

--- Registers the `peft` tree-sitter parser with nvim-treesitter (when it is installed) so that
--- `:TSInstall peft` builds it from the grammar folder; its queries are on the runtimepath.
function M.register_parser(opts)
  vim.treesitter.language.register('peft', 'peft')
  local ok, parsers = pcall(require, 'nvim-treesitter.parsers')
  if not ok then
    return false
  end
  local config = {
    install_info = {
      url = opts.grammar_dir,
      path = opts.grammar_dir, -- nvim-treesitter `main` branch
      files = { 'src/parser.c' },
      generate_requires_npm = false,
      requires_generate_from_grammar = false,
    },
    filetype = 'peft',
    tier = 3,
  }
  -- `master` branch: get_parser_configs(); `main` branch: the parsers table itself, which it
  -- reloads on `:TSUpdate`, so the entry is set again from its `User TSUpdate` event.
  if type(parsers.get_parser_configs) == 'function' then
    parsers.get_parser_configs().peft = config
  else
    parsers.peft = config
    vim.api.nvim_create_autocmd('User', {
      pattern = 'TSUpdate',
      group = vim.api.nvim_create_augroup('peft_ts_register', { clear = true }),
      callback = function()
        require('nvim-treesitter.parsers').peft = config
      end,
    })
  end
  return true
end

--- Configures and enables the `peftc` language server (Neovim 0.11+).
function M.setup(opts)
  opts = vim.tbl_deep_extend('force', M.defaults, opts or {})
  vim.filetype.add({ extension = { peft = 'peft' } })
  if not vim.list_contains(vim.opt.runtimepath:get(), plugin_dir) then
    vim.opt.runtimepath:append(plugin_dir)
  end
  M.register_parser(opts)
  if vim.lsp.config == nil or vim.lsp.enable == nil then
    vim.notify('peft.nvim: Neovim 0.11 or newer is needed for peftc lsp', vim.log.levels.WARN)
    return
  end
  vim.lsp.config('peftc', {
    cmd = opts.cmd,
    filetypes = { 'peft' },
    root_markers = opts.root_markers,
    settings = opts.settings,
  })
  vim.lsp.enable('peftc')
  vim.api.nvim_create_autocmd('FileType', {
    pattern = 'peft',
    group = vim.api.nvim_create_augroup('peft_buffer', { clear = true }),
    callback = function(args)
      vim.bo[args.buf].commentstring = '// %s'
      vim.bo[args.buf].shiftwidth = 2
      vim.bo[args.buf].expandtab = true
      pcall(vim.treesitter.start, args.buf, 'peft')
    end,
  })
end

return M
