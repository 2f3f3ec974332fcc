"""The kitledger API service: MQTT ingest, verification, custody rules, REST API and metrics.

Nothing is built at import time: settings come from `api.config.load_settings()` and the
database engine from `api.db.make_engine(settings)`, so importing any module is side-effect free.
"""
