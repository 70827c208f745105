"""Results for people: an analysis, a propose run, an eval run and the history, rendered for the terminal
(rich) and as files (Markdown, JUnit). Commands call these; nothing below the CLI renders."""
