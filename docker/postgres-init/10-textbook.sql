-- Our state database beside Airflow's metadata database (POSTGRES_DB=airflow) on the compose
-- Postgres, owned by the textbook role; airflow-init's Alembic migration creates its tables.
-- Runs once, when the postgres volume is first initialised. The password is a local-development
-- default like airflow/airflow; docker-compose.yaml's TEXTBOOK_DATABASE_URL and
-- AIRFLOW_CONN_TEXTBOOK_DB use the same (tests/test_compose.py checks they agree).
CREATE ROLE textbook LOGIN PASSWORD 'textbook';
CREATE DATABASE textbook OWNER textbook;
