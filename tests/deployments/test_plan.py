from deployments.steps import Step, _dependency_order


def _step(key, *deps):
    return type(key, (Step,), {"key": key, "depends_on": deps})()


def test_dependencies_come_first_otherwise_registration_order():
    a, b, c, d = _step("a"), _step("b", "d"), _step("c"), _step("d", "a")
    assert [s.key for s in _dependency_order([a, b, c, d])] == ["a", "c", "d", "b"]


def test_dependencies_outside_the_plan_are_ignored():
    assert [s.key for s in _dependency_order([_step("x", "not-in-plan")])] == ["x"]
