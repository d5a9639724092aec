"""Packaging of backwardcompatibilityml."""

from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as handle:
    long_description = handle.read()

setup(
    name="backwardcompatibilityml",
    version="0.1.0",
    description="Backward-compatible model updates for PyTorch: compatibility losses, scores, "
    "lambda_c sweeps and an interactive Jupyter widget",
    long_description=long_description,
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["backwardcompatibilityml", "backwardcompatibilityml.*"]),
    package_data={"backwardcompatibilityml.widgets.compatibility_analysis": ["resources/*"]},
    include_package_data=True,
    install_requires=[
        "torch>=2.0",
        "numpy>=1.22",
        "flask>=2.2",
        "flask-cors>=3.0",
        "rai-core-flask>=0.7",
        "ipython>=7.0",
        "pillow>=9.0",
        "tqdm>=4.60",
    ],
    extras_require={
        "mlflow": ["mlflow>=2.10"],
        "demo": ["scikit-learn>=1.2"],
        "dev": [
            "pytest>=7",
            "hypothesis>=6",
            "scikit-learn>=1.2",
            "nbclient>=0.8",
            "nbformat>=5.7",
            "ipykernel>=6",
            "jupyterlab>=4",
            "playwright>=1.40",
            "requests>=2.28",
        ],
    },
    entry_points={"console_scripts": ["bcml=backwardcompatibilityml.__main__:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Jupyter",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
