import math
import types

import keras
import keras_tuner
import numpy as np
import pytest

import keras_mtl
from keras_mtl import errors, tuning  # noqa: F401  (imports the submodule keras_mtl.tuning)
from keras_mtl.tuning.objective import _direction


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = {
        "reg": (2.0 * x[:, :1] + 1.0).astype("float32"),
        "flag": (x[:, 1:2] > 0.3).astype("float32"),
        "digit": (np.abs(x[:, 2] * 3).astype("int32") % 4),
    }
    return x, y


def _tasks():
    return [
        keras_mtl.Task("reg", "regression"),
        keras_mtl.Task("flag", "binary"),
        keras_mtl.Task("digit", "multiclass", num_classes=4),
    ]


def _split(x, y, at):
    return (x[:at], {k: v[:at] for k, v in y.items()}), (
        x[at:],
        {k: v[at:] for k, v in y.items()},
    )


def _space(hp):
    return {name: hp._hps[name][0] for name in hp._hps}


# === Search space ===


def test_default_search_space_is_registered():
    hypermodel = keras_mtl.tuning.MTLHyperModel((6,), _tasks())
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    space = _space(hp)
    assert sorted(space) == sorted(
        [
            "loss_weight/reg",
            "loss_weight/flag",
            "loss_weight/digit",
            "shared_layers",
            "shared_units",
            "dropout",
            "learning_rate",
        ]
    )
    for task in ("reg", "flag", "digit"):
        weight = space[f"loss_weight/{task}"]
        assert isinstance(weight, keras_tuner.engine.hyperparameters.Float)
        assert (weight.min_value, weight.max_value, weight.sampling) == (0.1, 10.0, "log")
    layers = space["shared_layers"]
    assert isinstance(layers, keras_tuner.engine.hyperparameters.Int)
    assert (layers.min_value, layers.max_value) == (1, 3)
    assert list(space["shared_units"].values) == [32, 64, 128, 256]
    dropout = space["dropout"]
    assert (dropout.min_value, dropout.max_value, dropout.step) == (0.0, 0.5, 0.1)
    lr = space["learning_rate"]
    assert (lr.min_value, lr.max_value, lr.sampling) == (1e-4, 1e-2, "log")
    objective = hypermodel.objective
    assert (objective.name, objective.direction) == ("val_delta_m", "max")


def test_fixed_knobs_changed_ranges_and_registries_searched():
    hypermodel = keras_mtl.tuning.MTLHyperModel(
        (6,),
        _tasks(),
        search_space={
            "loss_weight": (0.5, 2.0),
            "loss_weight/digit": [1.0, 3.0],
            "shared_layers": (0, 2),
            "dropout": None,
            "sharing": True,
            "weighting": ["static"],
        },
        fixed={"loss_weight/reg": 1.0},
        shared_units=8,
    )
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    space = _space(hp)
    assert "dropout" not in space
    assert isinstance(space["loss_weight/reg"], keras_tuner.engine.hyperparameters.Fixed)
    assert space["loss_weight/reg"].value == 1.0
    flag = space["loss_weight/flag"]
    # A bare (min, max) keeps the default log sampling of loss weights.
    assert (flag.min_value, flag.max_value, flag.sampling) == (0.5, 2.0, "log")
    assert list(space["loss_weight/digit"].values) == [1.0, 3.0]
    assert (space["shared_layers"].min_value, space["shared_layers"].max_value) == (0, 2)
    assert space["shared_units"].value == 8
    # Read from the registries when the model is built: strategies added later are searched.
    assert list(space["sharing"].values) == keras_mtl.sharing.names()
    assert list(space["weighting"].values) == ["static"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"search_space": {"depth": (1, 2)}}, "unknown knobs ['depth']"),
        ({"fixed": {"loss_weight/nope": 1.0}}, "unknown knobs ['loss_weight/nope']"),
        (
            {"search_space": {"dropout": (0.0, 0.2)}, "fixed": {"dropout": 0.1}},
            "both searched",
        ),
        ({"search_space": {"shared_layers": (3, 1)}}, "min_value < max_value"),
        ({"search_space": {"loss_weight": (0.0, 1.0)}}, "must be positive"),
        ({"search_space": {"shared_units": []}}, "empty list"),
        ({"fixed": {"loss_weight/reg": -1.0}}, "must be a positive number"),
        ({"reference": {"reg": 1.0}}, "one entry per task"),
        ({"reference": {"reg": 1.0, "flag": 0.0, "digit": 1.0}}, "positive finite"),
        ({"reference": "initial"}, "`reference` must be 'prior'"),
        ({"loss_weights": {"reg": 1.0}}, "does not accept `loss_weights`"),
        ({"shared_layers": 2, "search_space": {"shared_layers": (1, 3)}}, "both given"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, message):
    with pytest.raises(errors.ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        keras_mtl.tuning.MTLHyperModel((6,), _tasks(), **kwargs)


def test_build_uses_the_chosen_values_and_normalised_weights():
    hypermodel = keras_mtl.tuning.MTLHyperModel((6,), _tasks())
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    hp.values.update(
        {
            "loss_weight/reg": 0.5,
            "loss_weight/flag": 2.0,
            "loss_weight/digit": 0.5,
            "shared_layers": 2,
            "shared_units": 64,
            "dropout": 0.2,
            "learning_rate": 0.003,
        }
    )
    model = hypermodel.build(hp)
    # Mean 1: 3 * w / (0.5 + 2 + 0.5).
    assert [t.loss_weight for t in model.tasks] == pytest.approx([0.5, 2.0, 0.5])
    assert float(model.optimizer.learning_rate) == pytest.approx(0.003)
    tasks = [
        keras_mtl.Task.from_config({**t.get_config(), "loss_weight": w})
        for t, w in zip(_tasks(), (0.5, 2.0, 0.5))
    ]
    expected = keras_mtl.build_mtl_model((6,), tasks, shared_layers=2, shared_units=64)
    assert model.count_params() == expected.count_params()
    dropouts = [l for l in model._flatten_layers() if isinstance(l, keras.layers.Dropout)]
    assert dropouts and all(l.rate == pytest.approx(0.2) for l in dropouts)


def test_keras_model_backbone_is_cloned_per_trial():
    inputs = keras.Input((6,))
    backbone = keras.Model(inputs, keras.layers.Dense(5, name="trunk")(inputs))
    original = backbone.get_weights()
    hypermodel = keras_mtl.tuning.MTLHyperModel(
        backbone, _tasks()[:2], fixed={"shared_layers": 1, "shared_units": 8}
    )
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    first, second = hypermodel.build(hp), hypermodel.build(hp)
    x, y = _data(32)
    first.fit(x, {k: y[k] for k in ("reg", "flag")}, epochs=1, verbose=0)

    def trunk(model):
        return next(l for l in model._flatten_layers() if l.name == "trunk").get_weights()

    # Each trial starts from the backbone's weights, and training one trial moves none of
    # the others, nor the user's backbone.
    assert not np.allclose(trunk(first)[0], original[0])
    np.testing.assert_array_equal(trunk(second)[0], original[0])
    np.testing.assert_array_equal(backbone.get_weights()[0], original[0])


# === Objective ===


def test_prior_reference_matches_numpy():
    x, y = _data(96)
    (_, y_train), (_, y_val) = _split(x, y, 64)
    reference = keras_mtl.tuning.prior_reference(_tasks(), y_train, y_val)

    mean = y_train["reg"].mean()
    assert reference["reg"] == pytest.approx(np.mean((y_val["reg"] - mean) ** 2), rel=1e-5)
    p = (y_train["flag"].sum() + 1) / (len(y_train["flag"]) + 2)
    bce = -np.mean(y_val["flag"] * np.log(p) + (1 - y_val["flag"]) * np.log(1 - p))
    assert reference["flag"] == pytest.approx(bce, rel=1e-5)
    freq = (np.bincount(y_train["digit"], minlength=4) + 1) / (len(y_train["digit"]) + 4)
    assert reference["digit"] == pytest.approx(-np.mean(np.log(freq[y_val["digit"]])), rel=1e-5)


def test_prior_reference_ignores_missing_labels():
    tasks = [keras_mtl.Task("reg", "regression"), keras_mtl.Task("digit", "multiclass",
                                                                   num_classes=3)]
    y = {"reg": np.array([[1.0], [np.nan], [3.0]]), "digit": np.array([0, -1, 2])}
    reference = keras_mtl.tuning.prior_reference(tasks, y)
    assert reference["reg"] == pytest.approx(1.0)  # mean 2, errors 1 and 1
    assert reference["digit"] == pytest.approx(-np.log(2 / 5))  # counts (1, 0, 1), +1 each


def test_prior_reference_of_a_custom_task_asks_for_a_reference():
    tasks = [keras_mtl.Task("emb", "custom", units=2, loss="mse")]
    with pytest.raises(errors.ConfigError, match="reference="):
        keras_mtl.tuning.prior_reference(tasks, {"emb": np.zeros((4, 2))})


def test_delta_m_callback_logs_the_formula():
    x, y = _data(96)
    (xt, yt), (xv, yv) = _split(x, y, 64)
    model = keras_mtl.build_mtl_model((6,), _tasks(), shared_units=8, run_eagerly=True)
    reference = keras_mtl.tuning.prior_reference(_tasks(), yt, yv)
    seen = []
    recorder = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(dict(logs))
    )
    history = model.fit(
        xt, yt, validation_data=(xv, yv), epochs=2, verbose=0,
        callbacks=[keras_mtl.tuning.DeltaM(reference), recorder],
    )
    for epoch in range(2):
        for prefix in ("", "val_"):
            expected = np.mean(
                [
                    (reference[t] - history.history[f"{prefix}{t}_loss"][epoch]) / reference[t]
                    for t in reference
                ]
            )
            assert history.history[f"{prefix}delta_m"][epoch] == pytest.approx(expected)
        # Callbacks after it (KerasTuner's, TensorBoard, ...) see it in the logs.
        assert seen[epoch]["val_delta_m"] == history.history["val_delta_m"][epoch]


def test_scaling_all_loss_weights_leaves_the_objective_unchanged():
    x, y = _data(96)
    (xt, yt), (xv, yv) = _split(x, y, 64)
    reference = keras_mtl.tuning.prior_reference(_tasks(), yt, yv)
    model = keras_mtl.build_mtl_model((6,), _tasks(), shared_units=8, run_eagerly=True)
    model.fit(xt, yt, epochs=1, verbose=0)

    def scores(loss_weights):
        model.compile(loss_weights=loss_weights, run_eagerly=True)
        logs = {f"val_{k}": v for k, v in model.evaluate(xv, yv, verbose=0,
                                                         return_dict=True).items()}
        keras_mtl.tuning.DeltaM(reference).on_epoch_end(0, logs)
        return logs

    small = scores({"reg": 0.2, "flag": 0.5, "digit": 0.1})
    large = scores({"reg": 20.0, "flag": 50.0, "digit": 10.0})
    assert large["val_loss"] == pytest.approx(100 * small["val_loss"], rel=1e-4)
    assert large["val_delta_m"] == pytest.approx(small["val_delta_m"], abs=1e-6)

    # Through the hypermodel: weights (1, 2, 4) and (10, 20, 40) train the same model.
    hypermodel = keras_mtl.tuning.MTLHyperModel(
        (6,), _tasks(), fixed={"shared_layers": 1, "shared_units": 8, "dropout": 0.0,
                               "learning_rate": 0.01},
        run_eagerly=True,
    )
    results = []
    for scale in (1.0, 10.0):
        hp = keras_tuner.HyperParameters()
        hypermodel.declare_hyperparameters(hp)
        for task, weight in zip(("reg", "flag", "digit"), (1.0, 2.0, 4.0)):
            hp.values[f"loss_weight/{task}"] = weight * scale
        keras.utils.set_random_seed(3)
        model = hypermodel.build(hp)
        history = hypermodel.fit(
            hp, model, xt, yt, validation_data=(xv, yv), epochs=2, verbose=0, shuffle=False
        )
        results.append(history.history["val_delta_m"][-1])
    assert results[0] == pytest.approx(results[1], abs=1e-5)


def test_reference_from_validation_split_and_dataset():
    import tensorflow as tf

    x, y = _data(100)
    hypermodel = keras_mtl.tuning.MTLHyperModel((6,), _tasks())
    from_split = hypermodel.reference_losses(x, y, validation_split=0.2)
    (_, yt), (_, yv) = _split(x, y, 80)
    assert from_split == pytest.approx(keras_mtl.tuning.prior_reference(_tasks(), yt, yv))
    train = tf.data.Dataset.from_tensor_slices((x[:80], yt)).batch(16)
    val = tf.data.Dataset.from_tensor_slices((x[80:], yv)).batch(16)
    from_datasets = hypermodel.reference_losses(train, validation_data=val)
    assert from_datasets == pytest.approx(from_split, rel=1e-6)
    given = keras_mtl.tuning.MTLHyperModel(
        (6,), _tasks(), reference={"reg": 2.0, "flag": 0.5, "digit": 1.0}
    )
    assert given.reference_losses(x, y) == {"reg": 2.0, "flag": 0.5, "digit": 1.0}


# === Pareto front and results ===


def _fake_trial(trial_id, metrics, weights):
    hp = keras_tuner.HyperParameters()
    for name, value in weights.items():
        hp.Fixed(name, value)
    trial = keras_tuner.engine.trial.Trial(hp, trial_id=trial_id, status="COMPLETED")
    for name, value in metrics.items():
        trial.metrics.register(name)
        trial.metrics.update(name, value, step=0)
    return trial


def test_pareto_front_keeps_exactly_the_non_dominated_trials():
    points = {
        "a": (0.10, 0.60),  # best loss
        "b": (0.30, 0.90),  # best accuracy
        "c": (0.20, 0.80),
        "d": (0.25, 0.70),  # dominated by c
        "e": (0.20, 0.80),  # ties c: neither dominates
        "f": (0.40, 0.50),  # dominated by all
    }
    trials = {
        k: _fake_trial(k, {"val_reg_loss": l, "val_flag_accuracy": acc}, {})
        for k, (l, acc) in points.items()
    }
    oracle = types.SimpleNamespace(trials=trials)
    objectives = [
        keras_tuner.Objective("val_reg_loss", "min"),
        keras_tuner.Objective("val_flag_accuracy", "max"),
    ]
    front = keras_mtl.tuning.pareto_front(oracle, objectives)
    assert [t.trial_id for t in front] == ["a", "b", "c", "e"]
    # Directions inferred from names when objectives are given as strings.
    front = keras_mtl.tuning.pareto_front(oracle, ["val_reg_loss", "val_flag_accuracy"])
    assert [t.trial_id for t in front] == ["a", "b", "c", "e"]


def test_directions_inferred_from_metric_names():
    trials = {
        "low": _fake_trial("low", {"val_delta_m": 0.1}, {}),
        "high": _fake_trial("high", {"val_delta_m": 0.9}, {}),
    }
    front = keras_mtl.tuning.pareto_front(types.SimpleNamespace(trials=trials), ["val_delta_m"])
    assert [t.trial_id for t in front] == ["high"]
    for name in ("val_delta_m", "val_price_r2_score", "val_tag_f1_score", "val_a_accuracy",
                 "val_b_auc"):
        assert _direction(name) == "max", name
    for name in ("val_loss", "val_a_loss", "val_price_mae", "val_price_mse"):
        assert _direction(name) == "min", name


def test_an_infinite_dataset_is_refused_before_training():
    import tensorflow as tf

    x, y = _data()
    hypermodel = keras_mtl.tuning.MTLHyperModel((6,), _tasks())
    repeated = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).repeat()
    with pytest.raises(errors.ConfigError, match="`x` is an infinite dataset"):
        hypermodel.reference_losses(repeated, steps_per_epoch=2)
    with pytest.raises(errors.ConfigError, match="`validation_data` is an infinite"):
        hypermodel.reference_losses(x, y, validation_data=repeated)


def test_task_objectives():
    hypermodel = keras_mtl.tuning.MTLHyperModel((6,), _tasks())
    names = [(o.name, o.direction) for o in hypermodel.task_objectives()]
    assert names == [("val_reg_loss", "min"), ("val_flag_loss", "min"),
                     ("val_digit_loss", "min")]
    names = [
        (o.name, o.direction)
        for o in hypermodel.task_objectives({"reg": "mae", "flag": "auc", "digit": "accuracy"})
    ]
    assert names == [("val_reg_mae", "min"), ("val_flag_auc", "max"),
                     ("val_digit_accuracy", "max")]
    with pytest.raises(errors.ConfigError, match="unknown tasks"):
        hypermodel.task_objectives({"nope": "loss"})


# === Searches with every tuner ===


def _small_hypermodel(**kwargs):
    return keras_mtl.tuning.MTLHyperModel(
        (6,),
        _tasks(),
        fixed={"shared_units": 8, "dropout": 0.0},
        search_space={"shared_layers": (1, 2), "learning_rate": [0.003, 0.03]},
        run_eagerly=True,
        **kwargs,
    )


def _search(tuner, epochs=1, **kwargs):
    x, y = _data(96)
    (xt, yt), (xv, yv) = _split(x, y, 64)
    tuner.search(xt, yt, validation_data=(xv, yv), epochs=epochs, batch_size=64,
                 verbose=0, **kwargs)
    return tuner


def _check_trials(tuner, expected_count):
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == expected_count
    for trial in trials:
        assert trial.status == "COMPLETED", trial.message
        value = trial.metrics.get_last_value("val_delta_m")
        assert math.isfinite(value)
    return trials


@pytest.fixture(scope="module")
def random_search(tmp_path_factory):
    keras.utils.set_random_seed(0)
    hypermodel = _small_hypermodel()
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective=hypermodel.objective, max_trials=3, seed=1,
        directory=str(tmp_path_factory.mktemp("random")), project_name="p",
    )
    seen = []
    recorder = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append("val_delta_m" in logs)
    )
    _search(tuner, callbacks=[recorder])
    return tuner, seen


@pytest.mark.slow
def test_random_search_scores_trials_by_delta_m(random_search):
    tuner, seen = random_search
    trials = _check_trials(tuner, 3)
    # The user's callbacks ran after DeltaM and saw the objective.
    assert seen == [True] * 3
    for trial in trials:
        assert trial.score == trial.metrics.get_last_value("val_delta_m")
    best = tuner.oracle.get_best_trials(1)[0]
    assert best.score == max(t.score for t in trials)
    assert tuner.get_best_models(1)[0].task_names == ["reg", "flag", "digit"]


@pytest.mark.slow
def test_results_table_pareto_front_and_plot(random_search, tmp_path):
    tuner, _ = random_search
    table = keras_mtl.tuning.results_table(tuner)
    assert len(table) == 3
    for column in ("trial_id", "score", "shared_layers", "learning_rate", "loss_weight/reg",
                   "weight/reg", "val_reg_loss", "val_flag_accuracy", "val_digit_loss",
                   "val_delta_m", "pareto"):
        assert column in table.columns
    assert list(table["score"]) == sorted(table["score"], reverse=True)
    weights = table[["weight/reg", "weight/flag", "weight/digit"]].to_numpy()
    np.testing.assert_allclose(weights.mean(axis=1), 1.0, rtol=1e-6)
    raw = table[["loss_weight/reg", "loss_weight/flag", "loss_weight/digit"]].to_numpy()
    np.testing.assert_allclose(weights, raw / raw.mean(axis=1, keepdims=True), rtol=1e-6)

    # The default front: per-task validation losses.
    losses = table[["val_reg_loss", "val_flag_loss", "val_digit_loss"]].to_numpy()
    dominated = [
        any(np.all(o <= p) and np.any(o < p) for o in losses) for p in losses
    ]
    assert list(table["pareto"]) == [not d for d in dominated]
    front = keras_mtl.tuning.pareto_front(tuner)
    assert sorted(t.trial_id for t in front) == sorted(table.trial_id[table.pareto])

    path = tmp_path / "trials.png"
    figure = keras_mtl.tuning.plot_trials(tuner, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(figure.axes) == 4  # one panel per task, and loss vs loss
    assert figure.axes[0].get_xlabel() == "loss weight of reg / mean weight"


@pytest.mark.slow
def test_grid_search_with_per_task_objectives(tmp_path):
    hypermodel = keras_mtl.tuning.MTLHyperModel(
        (6,),
        _tasks(),
        fixed={"shared_units": 8, "dropout": 0.0, "shared_layers": 1, "learning_rate": 0.01,
               "loss_weight/reg": 1.0, "loss_weight/flag": 1.0},
        search_space={"loss_weight/digit": [0.5, 2.0]},
        run_eagerly=True,
    )
    objectives = hypermodel.task_objectives({"reg": "loss", "flag": "accuracy"})
    tuner = keras_tuner.GridSearch(hypermodel, objective=objectives,
                                   directory=str(tmp_path), project_name="p")
    _search(tuner)
    trials = _check_trials(tuner, 2)
    assert sorted(t.hyperparameters.values["loss_weight/digit"] for t in trials) == [0.5, 2.0]
    front = keras_mtl.tuning.pareto_front(tuner)  # the tuner's own objectives
    points = {
        t.trial_id: (t.metrics.get_last_value("val_reg_loss"),
                     t.metrics.get_last_value("val_flag_accuracy"))
        for t in trials
    }
    (a, pa), (b, pb) = points.items()
    a_wins = pa[0] <= pb[0] and pa[1] >= pb[1] and pa != pb
    b_wins = pb[0] <= pa[0] and pb[1] >= pa[1] and pa != pb
    expected = sorted([k for k, won in ((a, not b_wins), (b, not a_wins)) if won])
    assert [t.trial_id for t in front] == expected
    table = keras_mtl.tuning.results_table(tuner)
    assert set(table["pareto"]) <= {True, False}
    assert len(keras_mtl.tuning.plot_trials(tuner).axes) == 3


@pytest.mark.slow
def test_bayesian_optimization(tmp_path):
    hypermodel = _small_hypermodel()
    tuner = keras_tuner.BayesianOptimization(
        hypermodel, objective=hypermodel.objective, max_trials=3, num_initial_points=2,
        seed=0, directory=str(tmp_path), project_name="p",
    )
    _search(tuner)
    _check_trials(tuner, 3)


@pytest.mark.slow
def test_hyperband_continues_trials_with_its_epoch_budgets(tmp_path):
    hypermodel = _small_hypermodel()
    tuner = keras_tuner.Hyperband(
        hypermodel, objective=hypermodel.objective, max_epochs=2, factor=2,
        hyperband_iterations=1, seed=0, directory=str(tmp_path), project_name="p",
    )
    _search(tuner, epochs=2)
    trials = list(tuner.oracle.trials.values())
    assert all(t.status == "COMPLETED" for t in trials)
    continued = [t for t in trials if "tuner/trial_id" in t.hyperparameters.values]
    assert continued, "Hyperband should continue a trial from its checkpoint"
    for trial in continued:
        values = trial.hyperparameters.values
        assert (values["tuner/initial_epoch"], values["tuner/epochs"]) == (1, 2)
        assert math.isfinite(trial.metrics.get_last_value("val_delta_m"))


# === Soundness ===


@pytest.mark.slow
def test_a_pure_noise_task_does_not_make_small_weights_win(tmp_path):
    # `signal` is learnable, `noise` is pure noise with a large scale. A model that learned
    # nothing but carries a tiny weight on `noise` has a far smaller weighted `val_loss` than
    # a model that learned `signal`: tuning on `val_loss` would prefer it. Δm must not.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(384, 8)).astype("float32")
    y = {
        "signal": (x @ rng.normal(size=(8, 1))).astype("float32"),
        "noise": (30.0 * rng.normal(size=(384, 1))).astype("float32"),
    }
    (xt, yt), (xv, yv) = _split(x, y, 256)
    tasks = [keras_mtl.Task("signal", "regression"), keras_mtl.Task("noise", "regression")]
    hypermodel = keras_mtl.tuning.MTLHyperModel(
        (8,),
        tasks,
        search_space={"learning_rate": [1e-5, 3e-2], "loss_weight/noise": [0.02, 1.0]},
        fixed={"loss_weight/signal": 1.0},
        shared_layers=1,
        shared_units=16,
        dropout=0.0,
    )
    tuner = keras_tuner.GridSearch(hypermodel, objective=hypermodel.objective,
                                   directory=str(tmp_path), project_name="p")
    tuner.search(xt, yt, validation_data=(xv, yv), epochs=6, batch_size=64, verbose=0)
    table = keras_mtl.tuning.results_table(tuner).set_index(["learning_rate",
                                                             "loss_weight/noise"])
    assert len(table) == 4
    untrained_light, trained_heavy = table.loc[(1e-5, 0.02)], table.loc[(3e-2, 1.0)]
    assert untrained_light["val_loss"] < trained_heavy["val_loss"]  # the naive choice
    assert trained_heavy["val_delta_m"] > untrained_light["val_delta_m"] + 0.2
    best = tuner.get_best_hyperparameters(1)[0]
    assert best["learning_rate"] == 3e-2
    # Both models that learned rank above both that did not, whatever their weights.
    ranked = list(keras_mtl.tuning.results_table(tuner)["learning_rate"])
    assert ranked == [3e-2, 3e-2, 1e-5, 1e-5]
