pytest_plugins = ["chromium", "oltp_fixtures", "serial", "stack"]
