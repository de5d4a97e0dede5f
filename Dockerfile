# The user-code image of the mlops_assets code location. The Dagster Helm chart runs it as the
# user deployment (`dagster api grpc`, see deploy/helm/values.yaml), and K8sRunLauncher and
# k8s_job_executor run it again as every run worker and step pod. Build: docs/deploy-kubernetes.md.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed non-root uid/gid, so pod securityContexts can say runAsUser/runAsGroup: 10001.
RUN groupadd --gid 10001 dagster \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/dagster dagster

WORKDIR /opt/mlops_assets

# Dependencies first, at the exact pins of constraints.txt, so a code change does not reinstall them.
COPY constraints.txt setup.py ./
COPY mlops_assets/__init__.py mlops_assets/__init__.py
RUN pip install --no-cache-dir -c constraints.txt -e ".[k8s]"

COPY mlops_assets mlops_assets
COPY workspace.yaml ./

USER 10001:10001
# No credentials here: object-store keys and service URLs come from the chart's Secret/ConfigMap.
ENV MLOPS_DEPLOYMENT=k8s \
    MLOPS_HOME=/home/dagster/.mlops_home \
    DAGSTER_HOME=/home/dagster/dagster_home
EXPOSE 4000

# The same probe the chart's user deployment uses: the gRPC server answers its health check.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["dagster", "api", "grpc-health-check", "--port", "4000"]

CMD ["dagster", "api", "grpc", "--module-name", "mlops_assets", "--attribute", "defs", \
     "--host", "0.0.0.0", "--port", "4000"]
