"""Scene understanding: segmentation, depth and a shape count from one network.

Trains a small convolutional network with MTAN sharing on `keras_mtl.datasets.multi_shapes()`
(synthetic 32x32 scenes of squares, discs and triangles): per-pixel classes, per-pixel
depth with holes of missing labels, and the number of shapes. Prints the test metrics next
to those of the best constant prediction, and saves a PNG of a few test scenes with their
true and predicted maps to the output directory.

    python examples/scene_understanding.py [--epochs 12] [--sharing mtan] [--output-dir DIR]

Runs in a few minutes on 2 CPU cores, offline.
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_mtl  # noqa: E402


def backbone():
    """32x32 RGB -> an 8x8 map of 32 channels; the dense heads upsample back to 32x32."""
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Conv2D(24, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(48, 3, strides=2, padding="same", activation="relu")(x)
    return keras.Model(inputs, x, name="scene_backbone")


def constant_scores(data):
    """Test metrics of the best constant prediction (the prior), for comparison."""
    (_, y), _, (_, yt) = data
    seg = yt["segmentation"]
    labelled = seg >= 0
    majority = np.bincount(y["segmentation"][y["segmentation"] >= 0]).argmax()
    depth = yt["depth"][~np.isnan(yt["depth"])]
    median = np.nanmedian(y["depth"])
    counts = y["count"][y["count"] >= 0]
    count = yt["count"][yt["count"] >= 0]
    return {
        "segmentation_pixel_accuracy": float(np.mean(seg[labelled] == majority)),
        # Predicting one class everywhere: its IoU is its share, the other classes' are 0.
        "segmentation_mean_iou": float(np.mean(seg[labelled] == majority)
                                       / len(np.unique(seg[labelled]))),
        "depth_abs_err": float(np.mean(np.abs(depth - median))),
        "depth_rel_err": float(np.mean(np.abs(depth - median) / depth)),
        "count_accuracy": float(np.mean(count == np.bincount(counts).argmax())),
    }


def save_figure(model, data, path, rows=4):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, _, (xt, yt) = data
    predicted = model.predict(xt[:rows], verbose=0)
    titles = ["input", "true classes", "predicted", "true depth", "predicted depth"]
    figure, axes = plt.subplots(rows, len(titles), figsize=(2.2 * len(titles), 2.2 * rows))
    for r in range(rows):
        seg = np.where(yt["segmentation"][r] >= 0, yt["segmentation"][r], np.nan)
        count = int(np.argmax(predicted["count"][r]))
        images = [
            (xt[r], None), (seg, "tab10"), (np.argmax(predicted["segmentation"][r], -1), "tab10"),
            (yt["depth"][r, ..., 0], "viridis"), (predicted["depth"][r, ..., 0], "viridis"),
        ]
        for c, (image, cmap) in enumerate(images):
            ax = axes[r, c]
            if cmap == "tab10":
                ax.imshow(image, cmap=cmap, vmin=0, vmax=9)
            elif cmap == "viridis":
                ax.imshow(image, cmap=cmap, vmin=1, vmax=10)
            else:
                ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c])
        axes[r, 0].set_ylabel(f"count {yt['count'][r]} / predicted {count}")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--sharing", default="mtan")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=os.path.join(tempfile.gettempdir(),
                                                             "keras_mtl_scene"))
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)

    data = keras_mtl.datasets.multi_shapes(seed=args.seed, num_train=1500)
    (x, y), (xv, yv), (xt, yt) = data
    print(f"multi_shapes: {len(x)} train, {len(xv)} validation, {len(xt)} test scenes; "
          f"{np.isnan(y['depth']).mean():.0%} of depth pixels and "
          f"{(y['segmentation'] < 0).mean():.0%} of class pixels unlabelled")

    model = keras_mtl.build_mtl_model(
        backbone(), data.tasks, sharing=args.sharing, shared_layers=2, shared_units=32,
        learning_rate=3e-3,
    )
    model.fit(x, y, validation_data=(xv, yv), epochs=args.epochs, batch_size=32, verbose=2)
    scores = model.evaluate(xt, yt, verbose=0, return_dict=True)

    print("\nTest metrics (constant: the best constant prediction from the train labels)")
    print(f"{'metric':32s} {'model':>8s} {'constant':>9s}")
    for key, constant in constant_scores(data).items():
        print(f"{key:32s} {scores[key]:8.3f} {constant:9.3f}")

    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, "scene_understanding.png")
    save_figure(model, data, path)
    print(f"\nSaved {path}")


if __name__ == "__main__":
    main()
