#!/usr/bin/env bash
# Start a throw-away PostgreSQL on 127.0.0.1 for the multi-worker search and shared tracking
# server tests and print the SQLAlchemy URL of the Optuna database on stdout (the MLflow
# one is the same URL with hzexp_mlflow_test). Needs root (CI and developer machines here are root).
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | grep -q online; then
  pg_ctlcluster "$version" main start >&2 || { pg_createcluster "$version" main >&2 && pg_ctlcluster "$version" main start >&2; }
fi
su postgres -c "psql -qtc \"SELECT 1 FROM pg_roles WHERE rolname='hzexp'\" | grep -q 1 || psql -qc \"CREATE ROLE hzexp LOGIN PASSWORD 'hzexp'\"" >&2
su postgres -c "psql -qc 'DROP DATABASE IF EXISTS hzexp_test' && psql -qc 'CREATE DATABASE hzexp_test OWNER hzexp'" >&2
# A second database for the shared MLflow tracking server test (MLflow and Optuna both keep
# an alembic_version table, so they cannot share one).
su postgres -c "psql -qc 'DROP DATABASE IF EXISTS hzexp_mlflow_test' && psql -qc 'CREATE DATABASE hzexp_mlflow_test OWNER hzexp'" >&2
echo "postgresql+psycopg://hzexp:hzexp@127.0.0.1:5432/hzexp_test"
