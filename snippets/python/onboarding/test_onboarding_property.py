"""Property-based test: Hypothesis makes up hundreds of inputs and shrinks any failure.

The property: every name built by the branch rule passes the checker, and changing
any name's type to one that is not a change type makes it fail with ``branch-type``.
"""

from hypothesis import given
from hypothesis import strategies as st

from handbook.guide.workflow import BRANCH_MAX, TYPES, check_branch

words = st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)
slugs = st.lists(words, min_size=1, max_size=4).map("-".join)
issues = st.integers(min_value=1, max_value=99999)
branches = st.builds("{}/{}-{}".format, st.sampled_from(TYPES), issues, slugs).filter(
    lambda name: len(name) <= BRANCH_MAX
)


@given(branches)
def test_every_well_formed_branch_passes(name):
    assert check_branch(name) == []


@given(branches, st.from_regex(r"[a-z]{2,8}", fullmatch=True).filter(lambda t: t not in TYPES))
def test_an_unknown_type_always_fails_with_branch_type(name, kind):
    renamed = kind + name[name.index("/") :]
    assert [v.rule for v in check_branch(renamed)] in (
        ["branch-type"],
        ["branch-type", "branch-length"],
    )
