"""Two tabular tasks trained with hard sharing and with MMoE, and which experts each task uses.

The data are the MMoE paper's synthetic tasks (`keras_mtl.datasets.synthetic_tasks`): 100
numeric features and two tasks whose relatedness is set by one number, here a correlation of
0.5. The first task stays a regression; the second is turned into a binary one (is the label
above its training median?), so the two heads have different kinds. Both models have about
the same number of parameters. The script prints each model's test metrics, then the average
gate weight each MMoE task gives to each expert.

Run (about a minute on a laptop CPU):

    python examples/tabular_mmoe.py [--epochs 40] [--correlation 0.5]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_mtl  # noqa: E402


def load(correlation, seed):
    """The synthetic tasks, with task_b made binary at the median of its training labels."""
    (x, y), (x_val, y_val), (x_test, y_test) = keras_mtl.datasets.synthetic_tasks(
        correlation, seed=seed
    )
    threshold = np.median(y["task_b"])

    def labels(y_split):
        return {
            "amount": y_split["task_a"],
            "is_high": (y_split["task_b"] > threshold).astype("float32"),
        }

    return (x, labels(y)), (x_val, labels(y_val)), (x_test, labels(y_test))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--correlation", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    (x, y), validation, (x_test, y_test) = load(args.correlation, args.seed)
    tasks = [
        keras_mtl.Task("amount", "regression", head_units=[8]),
        keras_mtl.Task("is_high", "binary", head_units=[8]),
    ]
    strategies = {
        # 126 shared units give about the parameter count of 8 experts of 16 units with gates.
        "hard": keras_mtl.sharing.Hard(shared_layers=1, units=126),
        "mmoe": keras_mtl.sharing.MMoE(num_experts=8, expert_layers=1, expert_units=16),
    }
    models = {}
    for name, strategy in strategies.items():
        keras.utils.set_random_seed(args.seed)
        model = keras_mtl.build_mtl_model(keras.Input(x.shape[1:]), tasks, sharing=strategy)
        model.fit(
            x,
            y,
            validation_data=validation,
            epochs=args.epochs,
            batch_size=128,
            verbose=0,
            callbacks=[keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)],
        )
        models[name] = model
        results = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
        print(
            f"{name:4s} ({model.count_params():,} parameters): "
            f"amount MSE {results['amount_loss']:.4f}, MAE {results['amount_mae']:.4f} | "
            f"is_high accuracy {results['is_high_accuracy']:.4f}, AUC {results['is_high_auc']:.4f}"
        )

    usage = keras_mtl.sharing.gate_usage(models["mmoe"], x_test)
    print("\nMMoE gate usage on the test set (mean gate weight per expert):")
    experts = list(next(iter(usage.values())))
    print(f"{'':8s}" + "".join(f"{e:>10s}" for e in experts))
    for task, weights in usage.items():
        print(f"{task:8s}" + "".join(f"{weights[e]:10.3f}" for e in experts))


if __name__ == "__main__":
    main()
