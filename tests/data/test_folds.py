from collections import Counter
from pathlib import Path

import pytest

from benchmark.data.folds import split_fold
from benchmark.data.records import CLASSES, Utterance


def corpus(per_session=80):
    recs = []
    for s in range(1, 6):
        for i in range(per_session):
            g = "FM"[i % 2]
            e = CLASSES[(i // 2) % 4]
            uid = f"Ses{s:02d}F_impro01_{g}{i:03d}"
            recs.append(
                Utterance(uid, Path(f"/x/{uid}.wav"), s, f"Ses{s:02d}F_impro01", f"Ses{s:02d}{g}", g, e, 2.0, e)
            )
    return recs


@pytest.mark.parametrize("test_session", [1, 3, 5])
def test_stratified_validation_never_touches_the_test_session(test_session):
    recs = corpus()
    fold = split_fold(recs, test_session, val_fraction=0.1, seed=0)
    assert {r.session for r in fold.test} == {test_session}
    assert test_session not in {r.session for r in fold.train + fold.val}
    ids = [r.id for r in fold.train + fold.val + fold.test]
    assert len(ids) == len(set(ids)) == len(recs)
    assert len(fold.val) == pytest.approx(0.1 * (len(recs) - len(fold.test)), abs=1)
    # emotion x gender mix of validation follows training's
    strata = Counter((r.emotion, r.gender) for r in fold.val)
    assert len(strata) == 8 and max(strata.values()) - min(strata.values()) <= 1


def test_stratified_split_is_seeded():
    recs = corpus()
    a = split_fold(recs, 2, seed=0)
    b = split_fold(recs, 2, seed=0)
    c = split_fold(recs, 2, seed=1)
    assert [r.id for r in a.val] == [r.id for r in b.val]
    assert [r.id for r in a.val] != [r.id for r in c.val]


def test_session_validation_holds_out_the_next_training_session():
    recs = corpus()
    fold = split_fold(recs, 5, val_strategy="session")
    assert {r.session for r in fold.val} == {1}
    assert {r.session for r in fold.train} == {2, 3, 4}
    assert {r.session for r in split_fold(recs, 2, val_strategy="session").val} == {3}


def test_bad_fold_arguments():
    recs = corpus()
    with pytest.raises(ValueError, match="no fold 7"):
        split_fold(recs, 7)
    with pytest.raises(ValueError, match="val_fraction"):
        split_fold(recs, 1, val_fraction=1.5)
    with pytest.raises(ValueError, match="cannot hold all 8 emotion x gender groups"):
        split_fold(corpus(per_session=10), 1, val_fraction=0.1)
    with pytest.raises(ValueError, match="val_strategy"):
        split_fold(recs, 1, val_strategy="test")
