# SPDX-License-Identifier: GPL-2.0
# Sphinx configuration of tlbrace's documentation: `make htmldocs` renders
# it into build/html with warnings as errors (Sphinx from Debian's
# python3-sphinx, installed by `make deps`).
project = "tlbrace"
copyright = "The tlbrace authors"
master_doc = "index"
exclude_patterns = []
highlight_language = "none"
html_theme = "alabaster"
html_title = "tlbrace"
html_show_sourcelink = False
