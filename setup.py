"""spark-ray: run Python on Ray over Spark tables (a PySpark extension)."""

from setuptools import find_packages, setup

setup(
    name="spark-ray",
    version="0.1.0",
    description="Run Python on Ray over Spark tables: Byzer's !ray, rebuilt for PySpark",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["spark_ray", "spark_ray.*", "sql_ext", "sql_ext.*"]),
    package_data={"sql_ext": ["*.lark"], "spark_ray": ["*.lark"]},
    python_requires=">=3.10",
    # Ranges here; requirements.txt pins the exact versions CI and `make` install.
    install_requires=[
        "pyspark>=3.5,<5",  # 3.5: what RayDP needs; a few features need 4.x (spark_ray/spark_compat.py)
        "ray>=2.40",
        "pyarrow>=14",
        "pandas>=2,<3",
        "cloudpickle>=3",
        "lark>=1.1",
        "tqdm>=4.60",
    ],
    extras_require={
        "test": ["pytest>=8"],
        "bench": ["matplotlib", "psutil"],
        # ray_address="ray://host:port" (Ray Client)
        "client": ["ray[client]>=2.40"],
        # DataFrames of a Spark Connect session (SparkSession.builder.remote("sc://..."))
        "connect": ["grpcio>=1.67", "grpcio-status>=1.67", "googleapis-common-protos>=1.65", "zstandard>=0.23"],
    },
    entry_points={"console_scripts": ["spark-ray=sql_ext.cli:main"]},
)
