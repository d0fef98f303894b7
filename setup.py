from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
requirements = [
    line.strip()
    for line in (here / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

setup(
    name="keras_mtl",
    version="0.1.0",
    description="Multi-task learning models in Keras 3: sharing strategies, loss weighting, "
    "tuning and export.",
    long_description=(here / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_mtl", "keras_mtl.*"]),
    python_requires=">=3.10",
    install_requires=requirements,
    extras_require={"test": (here / "requirements-test.txt").read_text().split()},
    license="Apache-2.0",
)
