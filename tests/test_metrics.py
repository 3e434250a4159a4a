import pytest

from benchmark.metrics import confusion, evaluate, per_class_recall, uar, war

CLASSES = ("neu", "hap", "ang", "sad")


def test_war_and_uar_by_hand():
    y = [0, 0, 0, 0, 1, 1, 2, 3]
    p = [0, 0, 0, 1, 1, 0, 2, 0]
    assert war(y, p) == pytest.approx(5 / 8)
    # recalls: neu 3/4, hap 1/2, ang 1/1, sad 0/1
    assert uar(y, p) == pytest.approx((0.75 + 0.5 + 1 + 0) / 4)


def test_uar_ignores_classes_absent_from_truth():
    y = [0, 0, 1, 1]
    p = [0, 2, 1, 1]  # predicts class 2, which has no true samples
    assert uar(y, p) == pytest.approx((0.5 + 1.0) / 2)


def test_confusion_and_recall():
    y = [0, 1, 1, 3]
    p = [0, 1, 0, 3]
    cm = confusion(y, p, 4)
    assert cm.tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    assert per_class_recall(y, p, 4) == [1.0, 0.5, None, 1.0]


def test_evaluate_breaks_down_by_gender():
    y = [0, 1, 2, 3, 0, 1, 2, 3]
    p = [0, 1, 2, 3, 1, 1, 0, 0]
    g = ["F", "F", "F", "F", "M", "M", "M", "M"]
    out = evaluate(y, p, g, CLASSES)
    assert out["war"] == pytest.approx(5 / 8)
    assert out["by_gender"]["F"]["war"] == 1.0 and out["by_gender"]["F"]["uar"] == 1.0
    assert out["by_gender"]["M"]["war"] == pytest.approx(0.25)
    assert out["by_gender"]["M"]["recall"] == {"neu": 0.0, "hap": 1.0, "ang": 0.0, "sad": 0.0}
    assert sum(map(sum, out["by_gender"]["M"]["confusion"])) == 4
    # The overall confusion is the sum of the per-gender ones.
    total = [
        [a + b for a, b in zip(r1, r2, strict=True)]
        for r1, r2 in zip(out["by_gender"]["F"]["confusion"], out["by_gender"]["M"]["confusion"], strict=True)
    ]
    assert total == out["confusion"]
