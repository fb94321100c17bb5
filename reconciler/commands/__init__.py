"""Each pixel command as a plain function returning its exit code (the CLI only parses and calls)."""

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
