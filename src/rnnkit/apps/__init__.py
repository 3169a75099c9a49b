"""Applications: glue between data, model and trainer, callable from Python and from the CLI."""
