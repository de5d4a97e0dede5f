# User-code image for the mlops_assets code location (served over gRPC to the Dagster webserver/daemon).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 dagster
WORKDIR /opt/mlops_assets

# Dependencies first (pinned), so code changes do not reinstall them.
COPY constraints.txt setup.py ./
COPY mlops_assets/__init__.py mlops_assets/__init__.py
RUN pip install -c constraints.txt -e . && rm -rf /root/.cache

COPY mlops_assets mlops_assets
COPY workspace.yaml ./

USER dagster
ENV MLOPS_HOME=/home/dagster/.mlops_home
EXPOSE 4000
CMD ["dagster", "api", "grpc", "--module-name", "mlops_assets", "--attribute", "defs", "--host", "0.0.0.0", "--port", "4000"]
