"""Label fidelity (CAS): a real-only classifier's calls on each asked-for class of generated images,
beside its calls on held-out real scans."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from gan_lib.evaluation.label_fidelity import class_calls, label_fidelity


def brightness_classifier() -> keras.Model:
    """Calls an image tumour (1) when its mean pixel is above 0: a classifier whose every call is known."""
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.layers[-1].set_weights([np.array([[100.0]]), np.array([0.0])])
    return model


def images(n_bright: int, n_dark: int) -> np.ndarray:
    return np.concatenate([np.full((n_bright, 4, 4, 1), 0.5), np.full((n_dark, 4, 4, 1), -0.5)]).astype(np.float32)


def test_cas_is_the_classes_mean_accuracy_beside_the_held_out_scans_and_no_tumour_called_tumour_is_shown():
    held_out = images(3, 7)  # no tumour: 1 of 6 bright; tumour: 2 of 4 bright
    held_out_labels = np.array([0, 1, 1, 0, 0, 0, 0, 0, 1, 1])
    generated = {0: images(1, 3), 1: images(4, 0)}  # no tumour called tumour 1 in 4; tumour always right
    result = label_fidelity([brightness_classifier()], held_out, held_out_labels, [generated], ("no", "yes"), 1)
    assert result["score"] == pytest.approx((3 / 4 + 1) / 2)
    assert result["held_out_real"] == pytest.approx((5 / 6 + 2 / 4) / 2)
    assert result["ratio"] == pytest.approx(result["score"] / result["held_out_real"])
    no = result["per_class"]["no"]
    assert (no["generated_called_tumour"], no["held_out_called_tumour"]) == (pytest.approx(1 / 4), pytest.approx(1 / 6))
    assert (no["generated_images"], no["held_out_images"]) == (4, 6)


def test_a_one_class_generator_is_judged_on_its_class_and_tumour_classes_are_those_after_the_no_tumour_ones():
    result = label_fidelity([brightness_classifier()], images(1, 1), np.array([1, 1]), [{1: images(3, 1)}],
                            ("no", "yes"), 1)
    assert result["classes"] == ["yes"] and result["score"] == pytest.approx(3 / 4)
    assert result["held_out_real"] == pytest.approx(1 / 2)
    # four classes, two of them without a tumour: a call of class 2 or 3 is a tumour call
    calls = class_calls(np.array([0, 1, 2, 3, 1]), np.array([1, 1, 1, 1, 0]), 1, first_tumour=2)
    assert calls == {"accuracy": 0.25, "called_tumour": 0.5, "images": 4}
    assert np.isnan(class_calls(np.array([0]), np.array([0]), 1, first_tumour=1)["accuracy"])
