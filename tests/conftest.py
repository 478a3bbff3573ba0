pytest_plugins = ["chromium", "oltp_fixtures", "stack"]
