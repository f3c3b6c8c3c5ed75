"""The one exception the testbed raises for problems a user can fix."""


class TestbedError(Exception):
    """A testbed failure whose message says what is wrong and how to fix it."""

    __test__ = False  # not a pytest test class, despite the name
