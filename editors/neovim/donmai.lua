-- donmai-lsp for Neovim 0.11 or later: put this file in ~/.config/nvim/lsp/
-- (or paste the table into init.lua) and call vim.lsp.enable('donmai').
vim.lsp.config('donmai', {
  cmd = { 'donmai-lsp' },
  filetypes = { 'yaml' },
  root_markers = { 'donmai.toml', '.git' },
})
vim.lsp.enable('donmai')
