"""The implementation summary is traced from ``covers`` markers; a wrong id fails, named."""

import pytest

from handbook.guide import requirements


def test_every_requirement_a_test_can_prove_is_proven_by_some_test():
    proven = {proof.requirement for proof in requirements.trace()}
    unproven = [r.id for r in requirements.REQUIREMENTS if r.provable and r.id not in proven]
    assert not unproven, f"no test carries covers(...) for {unproven}"


def test_markers_are_found_on_functions_classes_and_modules(tmp_path):
    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        'pytestmark = pytest.mark.covers("20.1")\n'
        '@pytest.mark.covers("20.2")\n'
        "class TestA:\n"
        '    @pytest.mark.covers("20.3")\n'
        "    def test_one(self): pass\n"
        "def test_two(): pass\n"
        "def helper(): pass\n"
    )
    found = {(p.requirement, p.test) for p in requirements.trace(tmp_path, tmp_path)}
    assert found == {
        ("20.1", "test_one"), ("20.2", "test_one"), ("20.3", "test_one"), ("20.1", "test_two")
    }  # fmt: skip


def test_an_unknown_requirement_id_names_the_file_and_line(tmp_path):
    (tmp_path / "test_y.py").write_text(
        'import pytest\n\n@pytest.mark.covers("20.9")\ndef test_z(): pass\n'
    )
    with pytest.raises(requirements.UnknownRequirement, match=r"^test_y\.py:3: covers\('20\.9'\)"):
        requirements.trace(tmp_path, tmp_path)
