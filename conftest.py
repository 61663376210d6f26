# The suite's pytest plugin: options, markers, fixtures, Allure labels and the verdict.
pytest_plugins = ["playbook.plugin"]
