"""Reports for people: an analysis, an eval run, the history, rendered for the terminal and as Markdown."""
