import pytest

# Fixture modules that test modules load with `pytest_plugins` (and import helpers from): rewrite their
# asserts on first import, so pytest neither warns nor loses the assertion details.
pytest.register_assert_rewrite("tests.live", "tests.pg", "tests.oidc_issuer")
