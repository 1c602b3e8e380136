-- Baseline for streaming into pgvector: raw HNSW insert rate of 384-float vectors on this server,
-- without Tidemark (see Docs/pgvector.md). Run with the PostgreSQL 18 server's psql:
--   psql -h 127.0.0.1 -p 54318 -U postgres -d postgres -f Benchmarks/hnsw-insert-baseline.sql
\timing on
DROP DATABASE IF EXISTS hnsw_baseline;
CREATE DATABASE hnsw_baseline;
\c hnsw_baseline
CREATE EXTENSION vector;
CREATE TABLE t (id int PRIMARY KEY, v vector(384));
INSERT INTO t SELECT g, (SELECT array_agg(random() - 0.5)::vector(384) FROM generate_series(1, 384) WHERE g > 0) FROM generate_series(1, 50000) g;
SET maintenance_work_mem = '512MB';
CREATE INDEX ON t USING hnsw (v vector_cosine_ops) WITH (m = 16, ef_construction = 64);
INSERT INTO t SELECT g, (SELECT array_agg(random() - 0.5)::vector(384) FROM generate_series(1, 384) WHERE g > 0) FROM generate_series(50001, 55000) g;
CREATE TABLE u (id int PRIMARY KEY, v vector(384));
INSERT INTO u SELECT g, (SELECT array_agg(random() - 0.5)::vector(384) FROM generate_series(1, 384) WHERE g > 0) FROM generate_series(50001, 55000) g;
\c postgres
DROP DATABASE hnsw_baseline;
