-- Filetype detection: *.peft files are the `peft` filetype.
vim.filetype.add({ extension = { peft = 'peft' } })
