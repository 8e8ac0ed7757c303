-- graphc's `.graph` files in Neovim 0.8 or newer (`vim.lsp.start`): put this file in
-- ~/.config/nvim/plugin/ (or `require` it from init.lua). Debian 12 ships Neovim 0.7, which
-- lacks `vim.lsp.start`; use a newer Neovim (its AppImage, or Debian's backports).

-- `.graph` is not a filetype Neovim knows: register it.
vim.filetype.add({ extension = { graph = "graph" } })

vim.api.nvim_create_autocmd("FileType", {
  pattern = "graph",
  callback = function(args)
    vim.bo[args.buf].commentstring = "// %s"
    vim.lsp.start({
      name = "graphc",
      cmd = { "graphc", "lsp" },
      root_dir = vim.fs.dirname(vim.api.nvim_buf_get_name(args.buf)),
    })
  end,
})
