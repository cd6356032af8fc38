"""A packaged workflow whose middle step is a shell script (a command task)."""
