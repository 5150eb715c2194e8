"""The `hotpose` subcommands, one module per group; each has `add_parsers(sub)` (`hotpose.service.cli`)."""
