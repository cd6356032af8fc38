"""The vendored cloaca suite (suite/) runs only through test_suite.py, file by file in
subprocesses, never collected into this session."""

collect_ignore = ["suite"]
