# The Airflow image of the deployment in docker-compose.yml: the official image of the same
# Airflow version as pyproject.toml, plus this project at the pinned versions.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root pyproject.toml requirements.lock README.md /opt/retention/
COPY --chown=airflow:root plugins /opt/retention/plugins
RUN pip install --no-cache-dir -c /opt/retention/requirements.lock -e "/opt/retention[celery]"
ENV RETENTION_PROJECT_ROOT=/opt/retention
