"""Layer 7, cli: the `evsynth` command, one module per command: fit, report, sensitivity, network.
`main` parses and dispatches (the console script is evsynth.cli.main:run); `common` holds the shared
options, input loading, exit codes and terminal layout."""
